"""One build: a recipe -> its parts (data, forward process, objective, G, D, batch geometry), every check once.

The Trainer, ``python -m gdiff.train --dry-run``, the export and the benchmarks all call :func:`build`, so a
recipe that builds here trains, and one that fails here fails the same way everywhere: a ValueError or
FileNotFoundError naming the key, raised before anything is written. The checks:

* the objective against the discriminator: pairing and heads (``Objective.check``), or no D at all;
* the generator's parameterisation and transition against the objective (``Objective.check_generator``) and
  against the forward process (``Parameterization.check``: eps needs alpha_bar(1) >= 1e-6);
* batch geometry: train.batch_size over processes and micro-batches, D's minibatch-stddev groups;
* learning-rate decay (``lr_schedule.check``);
* evaluation: image metrics only for images, and their offline weight files present.

No check is left inside a training or sampling step: the steps run on what was built here.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gdiff import data, lr_schedule, nets, objectives, processes, recipes
from gdiff.data.maps import DataMap
from gdiff.data.transformed import transformed
from gdiff.export import GeneratorConfig
from gdiff.parameterization import parameterization_of

# When a data set's files are missing, a dry build assumes the shape its type implies: type -> (C, H, W) and
# number of classes (from the section's keys where they decide it).
ASSUMED_SHAPES = {
    "cifar10": lambda s: ((3, 32, 32), 10 if s.get("conditional") else 0),
    "imagenet64": lambda s: ((3, 64, 64), 1000 if s.get("conditional", True) else 0),
    "stacked_mnist": lambda s: ((3, 32, 32), 0),
    "image_folder": lambda s: ((3, s["resolution"], s["resolution"]), 0),
}


@dataclass
class Built:
    """A recipe's parts. ``data`` is None only in a stand-in build whose data files are missing (``data_note``
    says so: shape, classes and map are then those its type implies); ``discriminator`` is None when the recipe
    has ``discriminator: {type: none}``."""

    recipe: recipes.Recipe
    data: data.DataSource | None
    data_shape: tuple[int, ...]
    num_classes: int
    data_map: DataMap
    data_note: str
    schedule: processes.ForwardProcess
    objective: objectives.Objective
    generator: nn.Module
    discriminator: nn.Module | None
    local_batch: int
    micro_batch: int

    def generator_config(self) -> GeneratorConfig:
        """What an exported generator of this recipe needs to sample (gdiff/export.py)."""
        return generator_config(self.recipe, self.data_shape, self.num_classes, self.data_map)


def generator_config(recipe: recipes.Recipe, data_shape: tuple[int, ...], num_classes: int,
                     data_map: DataMap) -> GeneratorConfig:
    return GeneratorConfig(generator=dict(recipe.generator), diffusion=dict(recipe.diffusion),
                           data_shape=tuple(data_shape), num_classes=int(num_classes), data_map=data_map.config())


def batch_geometry(cfg: recipes.TrainConfig, num_processes: int) -> tuple[int, int]:
    """(per-process batch, per-process micro-batch) of ``train.batch_size`` over ``num_processes``."""
    if cfg.batch_size % num_processes:
        raise ValueError(f"train.batch_size={cfg.batch_size} must be divisible by the number of processes "
                         f"({num_processes})")
    local = cfg.batch_size // num_processes
    micro = cfg.micro_batch or local
    if local % micro:
        raise ValueError(f"train.micro_batch={micro} must divide the per-process batch {local} "
                         f"(train.batch_size={cfg.batch_size} over {num_processes} process(es))")
    return local, micro


def build(recipe: recipes.Recipe, num_processes: int = 1, *, dry_run: bool = False,
          stand_in_data: bool = False) -> Built:
    """Build and check every part of ``recipe`` for a run on ``num_processes`` processes.

    ``stand_in_data``: a missing image data set stands in by the shape its type implies (``Built.data`` is
    then None: enough for speed measurements, not for training). ``dry_run``: that, and the networks on the
    meta device (no memory, no initialisation; on the CPU where an operator has no meta kernel).
    """
    schedule = processes.from_config(recipe.diffusion)
    objective = objectives.from_config(recipe.objective)
    opt = recipe.optim
    lr_schedule.check(opt.lr_decay, opt.decay_start, opt.lr_min, (opt.lr_g, opt.lr_d))
    local, micro = batch_geometry(recipe.train, num_processes)
    source, shaped, note = _data(recipe.data, dry_run or stand_in_data)
    shape, classes = tuple(shaped.data_shape), int(shaped.num_classes)
    G = _network(processes.generator_section(recipe.generator, schedule, shape), shape, classes, "generator", dry_run)
    _check_time_input(recipe.generator, schedule)
    param = parameterization_of(G)
    param.check(schedule)
    objective.check_process(schedule)
    objective.check_generator(param)
    D = None
    if recipe.discriminator.get("type") == "none":
        if objective.reads_discriminator:
            raise ValueError(f"objective '{objective.name}' reads a discriminator; discriminator.type must not be "
                             f"none")
    else:
        D = _network(recipe.discriminator, schedule.state_shape(shape), classes, "discriminator", dry_run)
        objective.check(D)
        group = getattr(D, "stddev_group", 0)
        if group and micro % group:
            raise ValueError(f"the discriminator's minibatch-stddev groups of {group} need a per-process "
                             f"micro-batch divisible by {group}; got {micro}: adjust train.batch_size or "
                             f"train.micro_batch")
    _check_eval(recipe.eval, shape)
    return Built(recipe, source, shape, classes, shaped.data_map, note, schedule, objective, G, D, local, micro)


def _check_time_input(section: dict[str, Any], process: Any) -> None:
    """A generator that embeds integer step indices (``time_input: index``, the DDGAN code's convention) needs
    the process's grid of exactly ``time_steps`` steps, with training times drawn on it."""
    if section.get("time_input") != "index":
        return
    grid = getattr(process, "time_sampling", None) == "grid"
    if section.get("time_steps") != process.num_steps or not grid:
        raise ValueError(f"generator.time_input index embeds step indices of a {section.get('time_steps')}-step "
                         f"grid: set diffusion.num_steps to {section.get('time_steps')} and diffusion.time_sampling "
                         f"to grid (got num_steps {process.num_steps}, time_sampling "
                         f"{getattr(process, 'time_sampling', None)})")


def _check_eval(cfg: recipes.EvalConfig, shape: tuple[int, ...]) -> None:
    """Image metrics only for images; their weight files must exist (read when the first evaluation runs)."""
    if not cfg.metrics:
        return
    if len(shape) != 3:
        raise ValueError(f"eval.metrics {list(cfg.metrics)} are image metrics; the data has shape {list(shape)} "
                         f"(leave eval.metrics empty for points: they always get the mixture metrics)")
    from gdiff.eval import options_from_config

    options_from_config(cfg)


def _data(section: dict[str, Any], stand_in: bool) -> tuple[data.DataSource | None, data.DataSource, str]:
    """(the source or None, what stands for it: the source or a shape-only stand-in, a note)."""
    try:
        source = data.build(section)
    except data.MissingDataError as err:
        shaped = _stand_in(section, err) if stand_in else None
        if shaped is None:
            raise
        return None, shaped, f"assumed from the recipe (files missing: {err})"
    return source, source, f"from the data source ({len(source)} examples)"


def _stand_in(section: dict[str, Any], err: data.MissingDataError) -> data.DataSource | None:
    """A shape-only source for missing files: the shape a transform states (``latent_shape``), else the shape
    the data type implies, seen through the transform; None when neither is known."""
    shaped = data.DataSource()
    if getattr(err, "assumed_shape", None) is not None:
        shaped.data_shape, shaped.num_classes = tuple(err.assumed_shape), err.num_classes
        return shaped
    kind = section.get("type")
    if kind not in ASSUMED_SHAPES or (kind == "image_folder" and not isinstance(section.get("resolution"), int)):
        return None
    shaped.data_shape, shaped.num_classes = ASSUMED_SHAPES[kind](section)
    if section.get("transform") is None:
        return shaped
    try:
        return transformed(shaped, section["transform"])
    except data.MissingDataError as transform_err:  # the transform's own files are missing as well
        return _stand_in({}, transform_err)


def _network(section: dict[str, Any], shape: tuple[int, ...], classes: int, where: str, dry_run: bool) -> nn.Module:
    if dry_run:
        with contextlib.suppress(NotImplementedError), torch.device("meta"):
            return nets.build(section, shape, classes, where)
    return nets.build(section, shape, classes, where)


def describe(built: Built) -> str:
    """The resolved recipe as YAML, then comment lines: data shape, process, parameter counts, objective."""
    import yaml

    recipe = built.recipe
    lines = [yaml.safe_dump(recipe.to_dict(), sort_keys=False).rstrip(),
             f"# data: shape {list(built.data_shape)}, {built.num_classes} classes, {built.data_note}",
             f"# diffusion: {built.schedule.name}, T = {built.schedule.num_steps}",
             f"# batch: {built.local_batch} per process, micro-batches of {built.micro_batch}"]
    for where, net in (("generator", built.generator), ("discriminator", built.discriminator)):
        if net is not None:
            count = sum(p.numel() for p in net.parameters())
            lines.append(f"# {where} ({getattr(recipe, where)['type']}): {count:,} parameters")
    lines.append(f"# objective: {built.objective.name}, terms {[type(t).__name__ for t in built.objective.terms]}; "
                 f"{'matches the discriminator' if built.discriminator is not None else 'no discriminator'}")
    return "\n".join(lines)
