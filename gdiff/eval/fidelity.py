"""Image metrics through torch-fidelity: FID, Inception Score, KID, precision/recall.

Generated images reach torch-fidelity as uint8 tensors [N, 3, H, W] inside a ``Dataset``, exactly the bytes a
lossless PNG would hold but without writing one (and never through JPEG, whose artefacts move FID):
``uint8 = round((x + 1) * 127.5)`` of data-space images x in [-1, 1] (:func:`gdiff.sample.to_uint8`);
one-channel images are repeated over the three channels the feature extractors read. Reference images take
the same path (raw -> model space -> data space -> uint8), so both sides are quantised alike.

gdiff builds the feature extractor itself, its weights read without unpickling code (:mod:`gdiff.eval.weights`),
extracts features with torch-fidelity's loader and computes every metric with torch-fidelity's own functions
(``fid_statistics_to_metric``, ``isc_/kid_/prc_featuresdict_to_metric``, defaults of torch-fidelity 0.4).
torch-fidelity's pickle cache is never used: reference features (kid, prc) and FID statistics are cached by
:mod:`gdiff.eval.stats_cache` (safetensors, checksummed) under ``<Reference.key>-<extractor>-w<weights
digest>-<layer>-<kind>``; the reference key (:func:`reference_key`) carries data set, split, resolution and
image count.

Feature extractors: Inception-v3 for fid/isc/kid, VGG16 for prc (as in the papers), downloaded at first use
into the torch hub cache; offline, pass the weight files (``inception_weights``, ``vgg16_weights``); without them
and without a network, :class:`MissingWeightsError` says so. Tests pass ``feature_extractor`` = a small
extractor registered with :func:`register_extractor` for every metric.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch_fidelity
from torch import Tensor
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from gdiff.eval import stats_cache
from gdiff.eval.weights import (  # noqa: F401 -- MissingWeightsError is part of this module's interface
    INCEPTION,
    VGG16,
    MissingWeightsError,
    build_extractor,
    check_extractor,
    weights_digest,
    weights_state,
)
from gdiff.metrics.names import DIGIT_FEATURES
from gdiff.outputs import writable_folder
from gdiff.sample import to_uint8

METRICS = ("fid", "isc", "kid", "prc")
DEFAULT_EXTRACTORS = {"fid": INCEPTION, "isc": INCEPTION, "kid": INCEPTION, "prc": VGG16}
RESULT_KEYS = {  # torch-fidelity's result names -> gdiff's
    torch_fidelity.KEY_METRIC_FID: "fid",
    torch_fidelity.KEY_METRIC_ISC_MEAN: "isc_mean", torch_fidelity.KEY_METRIC_ISC_STD: "isc_std",
    torch_fidelity.KEY_METRIC_KID_MEAN: "kid_mean", torch_fidelity.KEY_METRIC_KID_STD: "kid_std",
    torch_fidelity.KEY_METRIC_PRECISION: "precision", torch_fidelity.KEY_METRIC_RECALL: "recall",
    torch_fidelity.KEY_METRIC_F_SCORE: "f_score",
}


class UInt8Images(Dataset):
    """A Dataset over uint8 images [N, 3, H, W] (what torch-fidelity's feature extractors read)."""

    def __init__(self, images: Tensor) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 images [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        self.images = images.cpu()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tensor:
        return self.images[index]


class SourceImages(Dataset):
    """Images ``indices`` of a data source as uint8 [3, H, W], through the source's own model/data maps."""

    def __init__(self, source: Dataset, indices: Tensor) -> None:
        self.source, self.indices = source, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Tensor:
        raw, _ = self.source[int(self.indices[index])]
        return to_uint8(self.source.to_data(self.source.to_model(torch.as_tensor(raw)[None])))[0]


@dataclass(frozen=True)
class Reference:
    """Reference images (a Dataset of uint8 [3, H, W], read only when the cache misses) and their cache key."""

    images: Dataset
    key: str


def reference_key(dataset: str, split: str, resolution: Sequence[int], count: int) -> str:
    """The cache name of a reference set: ``gdiff-<dataset>-<split>-<C>x<H>x<W>-n<count>`` (file-name safe)."""
    shape = "x".join(str(int(r)) for r in resolution)
    name = f"gdiff-{dataset}-{split}-{shape}-n{int(count)}"
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name)


def source_reference(source: Dataset, count: int, split: str | None = None) -> Reference:
    """``count`` images of a data source (all of them if it has fewer; else a fixed random subset, seed 0).

    ``split`` defaults to the source's ``split`` attribute (``train`` when it has none).
    """
    if len(getattr(source, "data_shape", ())) != 3:
        raise ValueError(f"image metrics need image data [C, H, W]; {getattr(source, 'name', 'data')} has "
                         f"shape {getattr(source, 'data_shape', None)}")
    total = len(source)
    count = min(int(count), total)
    if count < 1:
        raise ValueError(f"reference count must be >= 1, got {count}")
    indices = torch.arange(total) if count == total else torch.randperm(
        total, generator=torch.Generator().manual_seed(0))[:count].sort().values
    split = split or getattr(source, "split", "train")
    return Reference(SourceImages(source, indices), reference_key(source.name, split, source.data_shape, count))


def register_extractor(spec: str) -> str:
    """Make ``spec`` usable as torch-fidelity's ``feature_extractor`` and return its registered name.

    ``spec`` is a registered name (``inception-v3-compat``, ``vgg16``, ...) or ``package.module:Class`` of a
    :class:`FeatureExtractorBase` subclass, imported and registered under that same string.
    """
    if spec in FEATURE_EXTRACTORS_REGISTRY:
        return spec
    module_name, sep, class_name = spec.partition(":")
    if not sep:
        raise ValueError(f"feature extractor {spec!r} is neither registered with torch-fidelity "
                         f"({sorted(FEATURE_EXTRACTORS_REGISTRY)}) nor of the form package.module:Class")
    try:
        cls = getattr(importlib.import_module(module_name), class_name, None)
    except ImportError as err:
        raise ValueError(f"feature extractor {spec}: cannot import {module_name} ({err})") from err
    if not (isinstance(cls, type) and issubclass(cls, FeatureExtractorBase)):
        raise ValueError(f"{spec}: not a torch_fidelity FeatureExtractorBase subclass")
    torch_fidelity.register_feature_extractor(spec, cls)
    return spec


@dataclass
class FidelityOptions:
    """How to compute the metrics. ``feature_extractor``: one extractor for every metric (see
    :func:`register_extractor`; None: the defaults, Inception-v3 and VGG16 for prc) with its weights file
    ``extractor_weights``; default extractors' weights: local files instead of downloads."""

    feature_extractor: str | None = None
    extractor_weights: str | None = None
    inception_weights: str | None = None
    vgg16_weights: str | None = None
    cache_dir: str | None = None
    device: str = "cpu"
    batch_size: int = 64
    kid_subset_size: int = 1000
    verbose: bool = False

    def __post_init__(self) -> None:
        for name in ("extractor_weights", "inception_weights", "vgg16_weights"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise FileNotFoundError(f"{name}: weights file {path} not found")

    def groups(self, metrics: Sequence[str]) -> list[tuple[str, str | None, list[str]]]:
        """(extractor name, weights path, metrics) per feature-extractor pass."""
        if self.feature_extractor is not None:
            return [(register_extractor(self.feature_extractor), self.extractor_weights, list(metrics))]
        weights = {INCEPTION: self.inception_weights, VGG16: self.vgg16_weights}
        out = []
        for name in (INCEPTION, VGG16):
            chosen = [m for m in metrics if DEFAULT_EXTRACTORS[m] == name]
            if chosen:
                out.append((name, weights[name], chosen))
        return out

    def check(self, metrics: Sequence[str]) -> None:
        """What can fail before any image is drawn: the cache folder is writable, and for the torch-fidelity
        metrics among ``metrics`` the extractors are allowed and their weights read safely (defaults downloaded;
        ``digits``, gdiff's classifier, is trained or read later). Errors name the file or flag."""
        writable_folder(stats_cache.cache_folder(self.cache_dir), "--cache-dir (the statistics cache)")
        chosen = [m for m in metrics if m in METRICS]
        if self.feature_extractor == DIGIT_FEATURES or not chosen:
            return
        for name, weights, _ in self.groups(chosen):
            check_extractor(name)
            if name in (INCEPTION, VGG16):
                weights_state(name, weights, self.verbose)


def _features(images: Dataset, extractor: FeatureExtractorBase, options: FidelityOptions) -> dict[str, Tensor]:
    """Layer name -> features [N, D] of ``images`` (torch-fidelity's loader, one worker-free pass)."""
    from torch_fidelity.utils import get_featuresdict_from_dataset

    return get_featuresdict_from_dataset(images, extractor, options.batch_size, options.device.startswith("cuda"),
                                         True, options.verbose)


def _reference(reference: Reference, extractor: FeatureExtractorBase, prefix: str, feature_layers: set[str],
               fid_layer: str | None, options: FidelityOptions) -> tuple[dict[str, Tensor], dict | None]:
    """(reference features of ``feature_layers``, FID statistics of ``fid_layer`` or None), from the cache where
    it has them; a miss extracts the reference once and caches what was asked for."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    folder = stats_cache.cache_folder(options.cache_dir)
    key = {layer: f"{prefix}-{layer}-features" for layer in feature_layers}
    stats_key = f"{prefix}-{fid_layer}-fid-stats"
    features = {}
    for layer in feature_layers:
        entry = stats_cache.load_entry(folder, key[layer])
        if entry is not None:
            features[layer] = torch.from_numpy(entry["features"])
    stats = stats_cache.load_entry(folder, stats_key) if fid_layer else None
    if feature_layers - set(features) or (fid_layer and stats is None):
        extracted = _features(reference.images, extractor, options)
        for layer in feature_layers - set(features):
            features[layer] = extracted[layer]
            stats_cache.save_entry(folder, key[layer], {"features": features[layer].numpy()})
        if fid_layer and stats is None:
            stats = fid_features_to_statistics(extracted[fid_layer])
            stats_cache.save_entry(folder, stats_key, stats)
    return features, stats


def fidelity_metrics(samples: Tensor, reference: Reference, metrics: Sequence[str],
                     options: FidelityOptions | None = None) -> dict[str, float]:
    """Metrics of uint8 samples [N, 3, H, W] against ``reference`` (features/statistics cached by its key).

    Returns a flat dict with ``fid``, ``isc_mean``/``isc_std``, ``kid_mean``/``kid_std``,
    ``precision``/``recall``/``f_score`` as requested. Precision is the share of samples inside the
    reference manifold and recall the share of reference images inside the samples' (k = 3 neighbours).
    """
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_isc import isc_featuresdict_to_metric
    from torch_fidelity.metric_kid import kid_featuresdict_to_metric
    from torch_fidelity.metric_prc import prc_featuresdict_to_metric

    options = options or FidelityOptions()
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown image metric(s) {unknown}; known: {list(METRICS)}")
    fakes = UInt8Images(samples)
    writable_folder(stats_cache.cache_folder(options.cache_dir), "--cache-dir (the statistics cache)")
    out: dict[str, float] = {}
    for name, weights, chosen in options.groups(metrics):
        cls = FEATURE_EXTRACTORS_REGISTRY[name]
        layers = {m: cls.get_default_feature_layer_for_metric(m) for m in chosen}
        extractor = build_extractor(name, sorted(set(layers.values())), weights, options.device, options.verbose)
        fake = _features(fakes, extractor, options)
        prefix = f"{reference.key}-{name}-w{weights_digest(name, weights)}"
        ref, ref_stats = _reference(reference, extractor, prefix, {layers[m] for m in chosen if m in ("kid", "prc")},
                                    layers.get("fid"), options)
        kwargs = dict(verbose=options.verbose,
                      kid_subset_size=min(options.kid_subset_size, len(fakes), len(reference.images)))
        result = {}
        if "isc" in chosen:
            result.update(isc_featuresdict_to_metric(fake, layers["isc"], **kwargs))
        if "fid" in chosen:
            result.update(fid_statistics_to_metric(fid_features_to_statistics(fake[layers["fid"]]), ref_stats,
                                                   options.verbose))
        if "kid" in chosen:
            result.update(kid_featuresdict_to_metric(fake, ref, layers["kid"], **kwargs))
        if "prc" in chosen:
            result.update(prc_featuresdict_to_metric(fake, ref, layers["prc"], **kwargs))
        out.update({RESULT_KEYS[k]: float(v) for k, v in result.items() if k in RESULT_KEYS})
    return out


