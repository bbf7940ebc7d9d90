"""Recipes: YAML files with one section per built object, plus ``key.path=value`` overrides.

    extends:       base.yaml                                -> optional: a base recipe, path relative to this file
    data:          {type: mog25, ...}                      -> gdiff.data.build
    diffusion:     {schedule: cosine, num_steps: 2}         -> gdiff.processes.from_config
    generator:     {type: toy_generator, ...}               -> gdiff.nets.build
    discriminator: {type: toy_discriminator, ...}           -> gdiff.nets.build
    objective:     {type: siddm, afd_weight: 1.0}           -> gdiff.objectives.from_config
    optim:         see :class:`OptimConfig`
    train:         see :class:`TrainConfig`
    eval:          see :class:`EvalConfig`

``extends``: the recipe's keys deep-merge over the base's (mappings merge key by key, any other value, lists
included, replaces); bases may extend further bases, a cycle is an error, a chain holds at most MAX_EXTENDS
(32) files. ``key: !delete`` removes a key of the base (``train.foo=!delete`` as an override). The resolved
recipe (what a run directory's recipe.yaml holds) has no ``extends``. Files are read with a SafeLoader
subclass: tags that build Python objects are refused, never run; a document that expands (aliases counted at
every use) to more than MAX_NODES values, or nests deeper than MAX_DEPTH levels, is refused before anything
is built from it. The builders check their own sections through :mod:`gdiff.sections`; this module checks
the three plain sections (types and ranges of every key) and the top level. Errors are ValueError /
FileNotFoundError naming the file and the key.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gdiff import lr_schedule, sections
from gdiff.metrics.names import IMAGE_METRICS, METRIC_RESULTS, MIXTURE_METRICS

BUILT_SECTIONS = ("data", "diffusion", "generator", "discriminator", "objective")
PLAIN_SECTIONS = ("optim", "train", "eval")
MIXED_PRECISIONS = ("no", "bf16", "fp16")
COMPILE_MODES = ("no", "default", "reduce-overhead", "max-autotune")
TRACKERS = ("all", "aim", "clearml", "comet_ml", "dvclive", "mlflow", "swanlab", "tensorboard", "trackio", "wandb")
BEST_MODES = ("min", "max")
# String keys whose "no" YAML 1.1 reads as False (``mixed_precision: no``): False means "no" there.
_NO_MEANS_FALSE = {"train.mixed_precision", "train.compile"}
MAX_EXTENDS = 32  # the longest 'extends' chain
MAX_NODES = 100_000  # the most YAML nodes a recipe may expand to (aliases counted at every use)
MAX_DEPTH = 64  # the deepest nesting of mappings and lists


class _Delete:
    """The value of ``key: !delete``: remove ``key`` from the base recipe."""

    def __repr__(self) -> str:
        return "!delete"


DELETE = _Delete()


class _Loader(yaml.SafeLoader):
    """A SafeLoader that reads ``1e-4`` as a float (YAML 1.1 reads a string), knows ``!delete``, refuses
    duplicate keys and refuses documents that aliases blow up (:func:`_check_size`)."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        """PyYAML composes recursively, one call per level: stop at MAX_DEPTH, long before Python's stack."""
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _check_size(node, 0, {}, set())
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _check_size(node: yaml.Node, depth: int, seen: dict[int, tuple[int, int]], open_nodes: set[int]) -> tuple[int, int]:
    """(number of nodes, height) of the composed document with every alias expanded where it is used (what
    merging and validation will walk), each distinct node visited once; raises a ConstructorError beyond
    MAX_NODES (a "billion laughs" document: 9 aliases of 9 aliases of ...), beyond MAX_DEPTH levels (an alias of
    a deep node used deep down nests deeper than the text), or for an alias inside its own anchor."""
    key = id(node)
    if key not in seen:
        if key in open_nodes:
            raise yaml.constructor.ConstructorError(None, None, "an alias refers to a node that contains it",
                                                    node.start_mark)
        open_nodes.add(key)
        children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else \
            node.value if isinstance(node, yaml.SequenceNode) else []
        sizes = [_check_size(child, depth + 1, seen, open_nodes) for child in children]
        seen[key] = (1 + sum(size for size, _ in sizes), 1 + max((height for _, height in sizes), default=0))
        open_nodes.discard(key)
    total, height = seen[key]
    if total > MAX_NODES:
        raise yaml.constructor.ConstructorError(
            None, None, f"expands to more than {MAX_NODES:,} values (aliases count at every use)", node.start_mark)
    if depth + height > MAX_DEPTH:
        raise yaml.constructor.ConstructorError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                                                node.start_mark)
    return total, height


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*\.?[\d_]*(?:[eE][-+]?\d+)?|\.[\d_]+(?:[eE][-+]?\d+)?|\.inf|\.nan)$"
               r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)
_Loader.add_constructor("!delete", lambda loader, node: DELETE)
# PyYAML wants a space after a tag; let ``{a: !delete}`` and ``{a: !delete, b: 1}`` through as well.
_DELETE_IN_FLOW = re.compile(r"!delete(?=[,\]}])")


def parse_yaml(text: str, source: str = "recipe") -> Any:
    """Parse YAML text; a ValueError names ``source``, the line and the column of any error."""
    try:
        return yaml.load(_DELETE_IN_FLOW.sub("!delete ", text), Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = err.problem or err.context or "malformed"
        if "could not determine a constructor" in problem:
            problem += " (recipes are plain data read with a safe loader: tags that build Python objects are refused)"
        raise ValueError(f"{source}: not valid YAML{where}: {problem}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{source}: not valid YAML: {err}") from None


did_you_mean = sections.did_you_mean


def _fail(key: str, value: Any, expected: str) -> None:
    raise ValueError(f"recipe key {key} must be {expected}, got {value!r}")


def _check(key: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        _fail(key, value, expected)


def _check_choice(key: str, value: Any, options: Iterable[str]) -> None:
    options = tuple(options)
    if value not in options:
        hint = did_you_mean(value, options)
        raise ValueError(f"recipe key {key} must be one of {list(options)}, got {value!r}{hint}")


def _check_names(key: str, values: list[str], options: Iterable[str]) -> None:
    for value in values:
        _check_choice(f"{key}[]", value, options)
    if len(set(values)) != len(values):
        _fail(key, values, "a list without repeats")


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

    def __post_init__(self) -> None:
        for key in ("lr_g", "lr_d"):
            value = getattr(self, key)
            _check(f"optim.{key}", value, math.isfinite(value) and value > 0, "a finite learning rate > 0")
        _check("optim.betas", list(self.betas), all(0 <= b < 1 for b in self.betas), "two numbers in [0, 1)")
        _check("optim.weight_decay", self.weight_decay, 0 <= self.weight_decay < math.inf, "finite and >= 0")
        _check_choice("optim.lr_decay", self.lr_decay, lr_schedule.DECAYS)
        _check("optim.decay_start", self.decay_start, 0 <= self.decay_start < 1, "in [0, 1)")
        _check("optim.lr_min", self.lr_min, 0 <= self.lr_min <= min(self.lr_g, self.lr_d),
               f">= 0 and at most both learning rates ({self.lr_g}, {self.lr_d})")


@dataclass
class TrainConfig:
    max_steps: int = 10_000
    batch_size: int = 256  # total over all processes (and over accumulated micro-batches)
    micro_batch: int = 0  # per-process micro-batch; batch_size / (processes x micro_batch) accumulation steps
    seed: int = 0
    ema_decay: float = 0.999
    ema_warmup: bool = True  # timm's EMA warm-up: decay grows with the step count towards ema_decay
    mixed_precision: str = "no"  # no | bf16 | fp16 (Accelerate; fp16 with loss scaling)
    compile: str = "no"  # no | default | reduce-overhead | max-autotune (torch.compile of G and D)
    channels_last: bool = False  # image networks and batches in channels_last memory format
    num_workers: int = 4  # DataLoader workers per process for data that does not live on the device
    log_every: int = 100
    sample_every: int = 0  # a PNG grid of EMA samples from fixed noise every this many steps (0: only at the end)
    checkpoint_every: int = 0  # 0: only at the end
    keep_checkpoints: int = 2
    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])  # Accelerate trackers; [] for none
    threads: int = 0  # torch intra-op threads per process; 0 keeps torch's default (small MLPs like 1)

    def __post_init__(self) -> None:
        _check("train.max_steps", self.max_steps, self.max_steps >= 0, ">= 0")
        _check("train.batch_size", self.batch_size, self.batch_size >= 1, ">= 1")
        _check("train.micro_batch", self.micro_batch, self.micro_batch >= 0, ">= 0 (0: no accumulation)")
        _check("train.micro_batch", self.micro_batch, not self.micro_batch or self.batch_size % self.micro_batch == 0,
               f"0 or a divisor of train.batch_size ({self.batch_size})")
        _check("train.seed", self.seed, 0 <= self.seed < 2**32, "in [0, 2^32)")
        _check("train.ema_decay", self.ema_decay, 0 <= self.ema_decay <= 1, "in [0, 1]")
        _check_choice("train.mixed_precision", self.mixed_precision, MIXED_PRECISIONS)
        _check_choice("train.compile", self.compile, COMPILE_MODES)
        for key, low in (("num_workers", 0), ("log_every", 1), ("sample_every", 0), ("checkpoint_every", 0),
                         ("keep_checkpoints", 1), ("threads", 0)):
            value = getattr(self, key)
            _check(f"train.{key}", value, value >= low, f">= {low}")
        _check_names("train.trackers", self.trackers, TRACKERS)


@dataclass
class EvalConfig:
    num_samples: int = 10_000
    batch_size: int = 10_000
    every: int = 0  # also compute the metrics every this many steps into log.jsonl (0: only at the end)
    metrics: list[str] = field(default_factory=list)  # image metrics (fid, isc, kid, prc, modes); mixtures: always
    best: str = ""  # keep generator_best.safetensors by this result (e.g. fid, isc_mean), compared at each evaluation
    best_mode: str = "min"  # min | max: which direction of ``best`` is better
    # offline feature extractors (gdiff.eval.options_from_config -> gdiff.eval.fidelity.FidelityOptions); "" unset
    feature_extractor: str = ""  # one registered extractor for every image metric (e.g. digits); "": the defaults
    inception_weights: str = ""  # local Inception-v3 weights file (torch-fidelity's) for fid, isc, kid
    vgg16_weights: str = ""  # local VGG16 weights file (torch-fidelity's) for prc

    def __post_init__(self) -> None:
        _check("eval.num_samples", self.num_samples, self.num_samples >= 1, ">= 1")
        _check("eval.batch_size", self.batch_size, self.batch_size >= 1, ">= 1")
        _check("eval.every", self.every, self.every >= 0, ">= 0 (0: only at the end)")
        _check_names("eval.metrics", self.metrics, IMAGE_METRICS)
        if self.best:
            results = [key for metric in self.metrics for key in METRIC_RESULTS[metric]]
            _check_choice("eval.best", self.best, dict.fromkeys([*results, *MIXTURE_METRICS]))
        _check_choice("eval.best_mode", self.best_mode, BEST_MODES)


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
                  "train.trackers", "train.threads", "train.num_workers", "train.sample_every", "train.compile"}
PLAIN_CONFIGS = {"optim": OptimConfig, "train": TrainConfig, "eval": EvalConfig}


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def _typed_section(cls: type, values: Any, name: str) -> Any:
    """``cls(**values)`` with the keys checked against the dataclass's fields and annotations by
    :func:`gdiff.sections.check` (integers must be integers, lists must be lists, unknown keys get a did-you-mean)."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ValueError(f"recipe section '{name}' must be a mapping, got {type(values).__name__}")
    values = {key: "no" if value is False and f"{name}.{key}" in _NO_MEANS_FALSE else value
              for key, value in values.items()}
    return cls(**sections.check(cls, values, name))


def from_dict(raw: Mapping[str, Any], source: str = "recipe") -> Recipe:
    """Validate a nested dict and build a :class:`Recipe`; errors name the key and the source."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"{source}: a recipe must be a mapping of sections, got {type(raw).__name__}")
    known = (*BUILT_SECTIONS, *PLAIN_SECTIONS)
    for name in raw:
        if name not in known:
            hint = " ('extends' is resolved when a recipe file is loaded)" if name == "extends" else ""
            raise ValueError(f"{source}: unknown recipe section '{name}'{did_you_mean(name, known)}{hint}; "
                             f"known sections: {list(known)}")
    missing = [name for name in BUILT_SECTIONS if not isinstance(raw.get(name), Mapping)]
    if missing:
        raise ValueError(f"{source}: recipe section(s) {missing} missing or not a mapping")
    try:
        return Recipe(**{name: copy.deepcopy(dict(raw[name])) for name in BUILT_SECTIONS},
                      **{name: _typed_section(cls, raw.get(name), name) for name, cls in PLAIN_CONFIGS.items()})
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``a.b.c=value`` set; values are parsed as YAML (1e-4, true, [1, 2]);
    ``a.b.c=!delete`` removes the key."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.split(".")
        if not sep or not all(parts):
            raise ValueError(f"override {item!r} must look like key.path=value, e.g. train.max_steps=1000")
        value = parse_yaml(text, source=f"override {item!r}")
        *parents, leaf = parts
        node = raw
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"override {item!r}: {'.'.join(parents[: i + 1])} is a value ({child!r}), "
                                 f"not a section with keys")
            node = child
        if value is DELETE:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return raw


def merge(base: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    """``child`` deep-merged over ``base``: mappings merge key by key, other values replace, ``!delete`` removes."""
    out = copy.deepcopy(dict(base))
    for key, value in child.items():
        if value is DELETE:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = _without_deletes(value)
    return out


def _without_deletes(value: Any) -> Any:
    if isinstance(value, Mapping):
        return merge({}, value)
    if isinstance(value, list):
        if any(v is DELETE for v in value):
            raise ValueError("!delete is allowed only as the value of a mapping key, not in a list")
        return [_without_deletes(v) for v in value]
    return copy.deepcopy(value)


def read(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The raw recipe of a YAML file with its ``extends`` chain resolved (no validation)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recipe file not found: {path}")
    if path.resolve() in _chain:
        loop = " -> ".join(str(p) for p in (*_chain, path.resolve()))
        raise ValueError(f"recipe 'extends' cycle: {loop}")
    if len(_chain) >= MAX_EXTENDS:
        raise ValueError(f"recipe 'extends' chain longer than {MAX_EXTENDS} files: {_chain[0]} -> {_chain[1]} -> "
                         f"... -> {_chain[-1]} -> {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read the recipe file: {err}") from None
    raw = parse_yaml(text, source=str(path))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a recipe must be a mapping of sections, got {type(raw).__name__}")
    if "extends" not in raw:
        return merge({}, raw)
    ref = raw.pop("extends")
    if not isinstance(ref, str) or not ref:
        raise ValueError(f"{path}: 'extends' must be the path of a base recipe relative to this file, got {ref!r}")
    base_path = path.parent / Path(ref).expanduser()
    if not base_path.is_file():
        raise FileNotFoundError(f"{path}: extends: base recipe not found: {base_path}")
    return merge(read(base_path, (*_chain, path.resolve())), raw)


def load(path: str | Path, overrides: Iterable[str] = ()) -> Recipe:
    """Load a YAML recipe (resolving ``extends``), apply overrides and validate."""
    return from_dict(apply_overrides(read(path), overrides), source=str(path))
