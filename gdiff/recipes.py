"""Recipes: YAML files with one section per built object, plus ``key.path=value`` overrides.

    data:          {type: mog25, ...}                      -> gdiff.data.build
    diffusion:     {schedule: cosine, num_steps: 2}         -> gdiff.diffusion.Schedule.from_config
    generator:     {type: toy_generator, ...}               -> gdiff.nets.build
    discriminator: {type: toy_discriminator, ...}           -> gdiff.nets.build
    objective:     {type: siddm, afd_weight: 1.0}           -> gdiff.objectives.from_config
    optim:         see :class:`OptimConfig`
    train:         see :class:`TrainConfig`
    eval:          see :class:`EvalConfig`

The builders validate their own sections; this module validates the three plain sections and the top level.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BUILT_SECTIONS = ("data", "diffusion", "generator", "discriminator", "objective")


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-4`` as a string; this loader reads it as the float everybody means."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*\.?[\d_]*(?:[eE][-+]?\d+)?|\.[\d_]+(?:[eE][-+]?\d+)?|\.inf|\.nan)$"
               r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


@dataclass
class OptimConfig:
    """Adam for both networks; ``lr_decay`` (none | linear | cosine) from ``decay_start`` x max_steps to lr_min."""

    lr_g: float = 2e-4
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    weight_decay: float = 0.0
    lr_decay: str = "none"
    decay_start: float = 0.0
    lr_min: float = 0.0


@dataclass
class TrainConfig:
    max_steps: int = 10_000
    batch_size: int = 256  # total over all processes
    seed: int = 0
    ema_decay: float = 0.999
    ema_warmup: bool = True  # timm's EMA warm-up: decay grows with the step count towards ema_decay
    mixed_precision: str = "no"  # no | bf16 | fp16 (Accelerate)
    log_every: int = 100
    checkpoint_every: int = 0  # 0: only at the end
    keep_checkpoints: int = 2
    trackers: list[str] = field(default_factory=list)  # Accelerate trackers, e.g. [tensorboard]
    threads: int = 0  # torch intra-op threads per process; 0 keeps torch's default (small MLPs like 1)


@dataclass
class EvalConfig:
    num_samples: int = 10_000
    batch_size: int = 10_000
    every: int = 0  # also compute the metrics every this many steps into log.jsonl (0: only at the end)


@dataclass
class Recipe:
    data: dict[str, Any]
    diffusion: dict[str, Any]
    generator: dict[str, Any]
    discriminator: dict[str, Any]
    objective: dict[str, Any]
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def differences(self, other: Recipe) -> list[str]:
        """Keys whose values differ, ignoring the ones a resumed run may change (length, logging, eval)."""
        mine, theirs = _flatten(self.to_dict()), _flatten(other.to_dict())
        keys = sorted(set(mine) | set(theirs))
        return [k for k in keys if k not in RESUMABLE_KEYS and not k.startswith("eval.")
                and mine.get(k) != theirs.get(k)]


RESUMABLE_KEYS = {"train.max_steps", "train.log_every", "train.checkpoint_every", "train.keep_checkpoints",
                  "train.trackers", "train.threads"}


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def _typed_section(cls: type, values: Any, name: str) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ValueError(f"recipe section '{name}' must be a mapping, got {type(values).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown recipe key(s) {', '.join(f'{name}.{k}' for k in unknown)}; "
                         f"known keys of '{name}': {sorted(known)}")
    defaults = cls()
    out = {}
    for key, value in values.items():
        default = getattr(defaults, key)
        out[key] = _coerce(value, default, f"{name}.{key}")
    return cls(**out)


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Check ``value`` against the type of ``default`` (ints may become floats; lists become tuples)."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, tuple):
        ok = isinstance(value, (list, tuple)) and len(value) == len(default)
        value = tuple(float(v) for v in value) if ok else value
    elif isinstance(default, list):
        ok = isinstance(value, list)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ValueError(f"recipe key {where}: expected {type(default).__name__} like {default!r}, got {value!r}")
    return value


def from_dict(raw: Mapping[str, Any], source: str = "recipe") -> Recipe:
    """Validate a nested dict and build a :class:`Recipe`; errors name the key and the source."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"{source}: a recipe must be a mapping of sections, got {type(raw).__name__}")
    known = set(BUILT_SECTIONS) | {"optim", "train", "eval"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{source}: unknown recipe section(s) {unknown}; known sections: {sorted(known)}")
    missing = [name for name in BUILT_SECTIONS if not isinstance(raw.get(name), Mapping)]
    if missing:
        raise ValueError(f"{source}: recipe section(s) {missing} missing or not a mapping")
    try:
        return Recipe(**{name: dict(raw[name]) for name in BUILT_SECTIONS},
                      optim=_typed_section(OptimConfig, raw.get("optim"), "optim"),
                      train=_typed_section(TrainConfig, raw.get("train"), "train"),
                      eval=_typed_section(EvalConfig, raw.get("eval"), "eval"))
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from err


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``a.b.c=value`` set; values are parsed as YAML (1e-4, true, [1, 2])."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like key.path=value")
        *parents, leaf = key.split(".")
        node = raw
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"override {item!r}: {'.'.join(parents[: i + 1])} is not a section")
            node = child
        node[leaf] = parse_yaml(text)
    return raw


def load(path: str | Path, overrides: Iterable[str] = ()) -> Recipe:
    """Load a YAML recipe, apply overrides and validate."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recipe file not found: {path}")
    with path.open() as f:
        try:
            raw = parse_yaml(f.read()) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML: {err}") from err
    return from_dict(apply_overrides(raw, overrides), source=str(path))
