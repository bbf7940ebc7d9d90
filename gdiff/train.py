"""``python -m gdiff.train RECIPE [key.path=value ...] [--run-dir DIR]`` (also under ``accelerate launch -m``).

Trains into the run directory (default ``runs/<recipe name>``), resuming from its newest checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gdiff import recipes
from gdiff.trainer import Trainer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gdiff.train", description=__doc__)
    parser.add_argument("recipe", type=Path, help="YAML recipe, e.g. recipes/mog25_siddm.yaml")
    parser.add_argument("overrides", nargs="*", help="recipe overrides such as train.max_steps=1000")
    parser.add_argument("--run-dir", type=Path, default=None, help="output directory (default runs/<recipe>)")
    args = parser.parse_args(argv)
    recipe = recipes.load(args.recipe, args.overrides)
    Trainer(recipe, args.run_dir or Path("runs") / args.recipe.stem).train()


if __name__ == "__main__":
    main()
