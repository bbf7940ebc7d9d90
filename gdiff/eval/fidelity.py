"""Image metrics through torch-fidelity: FID, Inception Score, KID, precision/recall.

Generated images reach torch-fidelity as uint8 tensors [N, 3, H, W] inside a ``Dataset``, exactly the bytes a
lossless PNG would hold but without writing one (and never through JPEG, whose artefacts move FID):
``uint8 = round((x + 1) * 127.5)`` of data-space images x in [-1, 1] (:func:`gdiff.sample.to_uint8`);
one-channel images are repeated over the three channels the feature extractors read. Reference images take
the same path (raw -> model space -> data space -> uint8), so both sides are quantised alike.

Reference features and FID statistics are cached by torch-fidelity under ``cache_dir`` (default
``$TORCH_HOME/fidelity_cache``) with the name from :func:`reference_key`: torch-fidelity's cache has no
content hash, so the name carries everything that changes the statistics -- data set, split, resolution,
image count and the feature extractor's weights.

Feature extractors: torch-fidelity's defaults (Inception-v3 for fid/isc/kid, VGG16 for prc, as in the papers)
download their weights at first use. Offline, pass the weight files (``inception_weights``,
``vgg16_weights``); without them and without a network, :class:`MissingWeightsError` says so. Tests pass
``feature_extractor`` = a small extractor registered with :func:`register_extractor` for every metric.
"""

from __future__ import annotations

import hashlib
import importlib
import re
import urllib.error
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch_fidelity
from torch import Tensor
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from gdiff.sample import to_uint8

METRICS = ("fid", "isc", "kid", "prc")
INCEPTION, VGG16 = "inception-v3-compat", "vgg16"
DEFAULT_EXTRACTORS = {"fid": INCEPTION, "isc": INCEPTION, "kid": INCEPTION, "prc": VGG16}
RESULT_KEYS = {  # torch-fidelity's result names -> gdiff's
    torch_fidelity.KEY_METRIC_FID: "fid",
    torch_fidelity.KEY_METRIC_ISC_MEAN: "isc_mean", torch_fidelity.KEY_METRIC_ISC_STD: "isc_std",
    torch_fidelity.KEY_METRIC_KID_MEAN: "kid_mean", torch_fidelity.KEY_METRIC_KID_STD: "kid_std",
    torch_fidelity.KEY_METRIC_PRECISION: "precision", torch_fidelity.KEY_METRIC_RECALL: "recall",
    torch_fidelity.KEY_METRIC_F_SCORE: "f_score",
}


class MissingWeightsError(RuntimeError):
    """A feature extractor's weights are neither given, cached, nor downloadable (offline machine)."""


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


def _weights_tag(path: str | None) -> str:
    """A short digest of a weights file (so that different weights never share cached features)."""
    if path is None:
        return "download"
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


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
    cls = getattr(importlib.import_module(module_name), class_name, None)
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


def _missing_weights(name: str, err: Exception) -> MissingWeightsError:
    flag = "--vgg16-weights" if name == VGG16 else "--inception-weights"
    return MissingWeightsError(
        f"the {name} feature extractor's weights are not in the torch hub cache ({torch.hub.get_dir()}) and "
        f"could not be downloaded ({err}); on an offline machine pass {flag} PATH (torch-fidelity's weight file, "
        f"copied from a machine with internet; see docs/evaluation.md)")


def fidelity_metrics(samples: Tensor, reference: Reference, metrics: Sequence[str],
                     options: FidelityOptions | None = None) -> dict[str, float]:
    """Metrics of uint8 samples [N, 3, H, W] against ``reference`` (features/statistics cached by its key).

    Returns a flat dict with ``fid``, ``isc_mean``/``isc_std``, ``kid_mean``/``kid_std``,
    ``precision``/``recall``/``f_score`` as requested. Precision is the share of samples inside the
    reference manifold and recall the share of reference images inside the samples' (k = 3 neighbours).
    """
    options = options or FidelityOptions()
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown image metric(s) {unknown}; known: {list(METRICS)}")
    fakes = UInt8Images(samples)
    out: dict[str, float] = {}
    for name, weights, chosen in options.groups(metrics):
        binary = any(m != "isc" for m in chosen)
        subset = min(options.kid_subset_size, len(fakes), len(reference.images)) if "kid" in chosen else 1
        kwargs = dict(
            input1=fakes, input2=reference.images if binary else None,
            input2_cache_name=f"{reference.key}-w{_weights_tag(weights)}" if binary else None,
            feature_extractor=name, feature_extractor_weights_path=weights,
            cuda=options.device.startswith("cuda"), batch_size=options.batch_size, cache_root=options.cache_dir,
            kid_subset_size=subset, save_cpu_ram=True, verbose=options.verbose,
            **{m: m in chosen for m in METRICS},
        )
        try:
            result = torch_fidelity.calculate_metrics(**kwargs)
        except urllib.error.URLError as err:
            raise _missing_weights(name, err) from err
        out.update({RESULT_KEYS[k]: float(v) for k, v in result.items() if k in RESULT_KEYS})
    return out
