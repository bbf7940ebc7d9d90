"""``python -m gdiff.train RECIPE [key.path=value ...] [--run-dir DIR] [--dry-run]`` (also ``accelerate launch -m``).

Trains into the run directory (default ``runs/<recipe name>``), resuming from its newest checkpoint.
``--dry-run`` prints the resolved recipe and the networks' parameter counts, then exits without training or
writing anything. Exit status: 0 done; 2 bad input (recipe, overrides, data, networks: one ``error:`` line on
stderr, no traceback); 1 a non-finite loss stopped training. Any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from gdiff import recipes

# When a data set's files are missing, --dry-run assumes the shape its type implies: type -> (C, H, W) and
# number of classes (from the section's keys where they decide it).
ASSUMED_SHAPES = {
    "cifar10": lambda s: ((3, 32, 32), 10 if s.get("conditional") else 0),
    "imagenet64": lambda s: ((3, 64, 64), 1000 if s.get("conditional", True) else 0),
    "stacked_mnist": lambda s: ((3, 32, 32), 0),
    "image_folder": lambda s: ((3, s["resolution"], s["resolution"]), 0),
}


def data_shape(section: Mapping[str, Any]) -> tuple[tuple[int, ...], int, str]:
    """(shape of one example, number of classes, how it was found) for a recipe's ``data`` section.

    Builds the data source (:func:`gdiff.data.build`); if its files are missing (FileNotFoundError) and the type
    is one of ``ASSUMED_SHAPES``, the shape that type implies instead. Other errors propagate.
    """
    from gdiff import data

    try:
        source = data.build(section)
    except FileNotFoundError as err:
        kind = section.get("type")
        if kind not in ASSUMED_SHAPES or (kind == "image_folder" and not isinstance(section.get("resolution"), int)):
            raise
        shape, classes = ASSUMED_SHAPES[kind](section)
        return shape, classes, f"assumed from data.type {kind} (data files missing: {err})"
    return tuple(source.data_shape), int(source.num_classes), f"from the data source ({len(source)} examples)"


def dry_run(recipe: recipes.Recipe) -> str:
    """The resolved recipe as YAML, then comment lines: data shape, parameter counts, objective check.

    Networks are built on the meta device (no memory, no initialisation cost; on the CPU if one of their
    operators has no meta kernel) and checked against the objective, as the Trainer does; nothing is written.
    Raises ValueError / FileNotFoundError like the Trainer.
    """
    import torch

    from gdiff import nets, objectives
    from gdiff.diffusion import Schedule

    schedule = Schedule.from_config(recipe.diffusion)
    objective = objectives.from_config(recipe.objective)
    shape, classes, how = data_shape(recipe.data)
    lines = [yaml.safe_dump(recipe.to_dict(), sort_keys=False).rstrip(),
             f"# data: shape {list(shape)}, {classes} classes, {how}",
             f"# diffusion: {recipe.diffusion.get('schedule')}, T = {schedule.num_steps}"]
    built = {}
    wheres = ["generator"]
    if recipe.discriminator.get("type") == "none":  # objectives that read no discriminator (the Trainer's rule)
        if objective.reads_discriminator:
            raise ValueError(f"objective '{objective.name}' reads a discriminator; discriminator.type must not be none")
    else:
        wheres.append("discriminator")
    for where in wheres:
        try:
            with torch.device("meta"):
                built[where] = nets.build(getattr(recipe, where), shape, classes, where)
        except NotImplementedError:  # an operator without a meta kernel: build it for real on the CPU
            built[where] = nets.build(getattr(recipe, where), shape, classes, where)
    if "discriminator" in built:
        objective.check(built["discriminator"])
    for where, net in built.items():
        count = sum(p.numel() for p in net.parameters())
        lines.append(f"# {where} ({getattr(recipe, where)['type']}): {count:,} parameters")
    lines.append(f"# objective: {objective.name}, terms {[type(t).__name__ for t in objective.terms]}; "
                 f"{'matches the discriminator' if 'discriminator' in built else 'no discriminator'}")
    return "\n".join(lines)


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
            print(dry_run(recipe))
            return 0
        from gdiff.trainer import Trainer

        trainer = Trainer(recipe, args.run_dir or Path("runs") / args.recipe.stem)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        trainer.train()
    except FloatingPointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
