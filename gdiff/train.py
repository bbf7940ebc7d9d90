"""``python -m gdiff.train RECIPE [key.path=value ...] [--run-dir DIR] [--dry-run]`` (also ``accelerate launch -m``).

Trains into the run directory (default ``runs/<recipe name>``), resuming from its newest checkpoint.
``--dry-run`` builds the recipe exactly as training does (gdiff/build.py: every check), prints the resolved
recipe and the networks' parameter counts, then exits without training or writing anything. Exit status:
0 done, or stopped by SIGTERM with a checkpoint; 130 stopped by SIGINT (Ctrl-C) with a checkpoint; 2 bad input
(recipe, overrides, data, networks, a run directory in use, damaged or holding another recipe: one ``error:``
line on stderr, no traceback); 1 a non-finite loss stopped training; 128 + signal number after a second
signal (docs/reliability.md). Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gdiff import recipes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gdiff.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", type=Path, help="YAML recipe, e.g. recipes/mog25_siddm.yaml")
    parser.add_argument("overrides", nargs="*", help="recipe overrides such as train.max_steps=1000")
    parser.add_argument("--run-dir", type=Path, default=None, help="output directory (default runs/<recipe>)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the resolved recipe and the parameter counts, then exit")
    args = parser.parse_args(argv)
    try:
        recipe = recipes.load(args.recipe, args.overrides)
        if args.dry_run:
            from gdiff.build import build, describe

            print(describe(build(recipe, dry_run=True)))
            return 0
        from gdiff.trainer import Trainer

        trainer = Trainer(recipe, args.run_dir or Path("runs") / args.recipe.stem)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from gdiff.checkpoints import RunError
    from gdiff.interrupt import exit_status

    try:
        stopped = trainer.train()
    except RunError as err:  # the run directory is in use, damaged, or holds another recipe
        print(f"error: {err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return exit_status(stopped)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C before the training loop took over the signal: nothing to save yet
        print("error: interrupted before training started", file=sys.stderr)
        sys.exit(130)
