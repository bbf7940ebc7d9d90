"""Data in a transformed space: ``data: {type: digits, transform: haar}`` trains the diffusion GAN on the
Haar subbands of the images (WaveDiff); samples are transformed back.

    model x  = scale * haar(inner.to_model(raw))           [B, 4C, H/2, W/2]
    data     = inner.to_data(ihaar(x / scale))              [B, C, H, W]

``transform: haar`` uses ``scale = 1/2`` (WaveDiff's normalisation: the low-pass band of images in [-1, 1]
then lies in [-1, 1], like every other band); ``transform: {type: haar, scale: S}`` sets it. Everything
else (raw examples, labels, in-memory storage) is the inner source's.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from gdiff import sections
from gdiff.data.latent_source import LatentSource
from gdiff.data.maps import HaarMap
from gdiff.data.source import DataSource


class HaarSource(DataSource):
    """The inner image source seen through the orthonormal Haar transform (gdiff/wavelet.py), times ``scale``."""

    def __init__(self, inner: DataSource, scale: float = 0.5) -> None:
        shape = tuple(inner.data_shape)
        if len(shape) != 3 or shape[1] % 2 or shape[2] % 2:
            raise ValueError(f"data.transform haar needs images [C, H, W] with even H and W; {inner.name} has "
                             f"data_shape {list(shape)}")
        if inner.hflip:
            raise NotImplementedError("data.transform haar: random flips would be applied to the subbands, where a "
                                      "horizontal flip also negates the LH and HH bands, which the batch stream "
                                      "does not do; set data.hflip: false")
        self.inner, self.data_map = inner, HaarMap(inner.data_map, scale)
        self.data_shape = (4 * shape[0], shape[1] // 2, shape[2] // 2)
        self.num_classes, self.in_memory = inner.num_classes, inner.in_memory
        self.raw, self.labels = inner.raw, inner.labels
        self.name = f"{inner.name}+haar"

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.inner[index]


# data.transform type -> the wrapping source, built as cls(inner source, **keywords); latent:
# gdiff/data/latent_source.py
TRANSFORMS: dict[str, type[DataSource]] = {"haar": HaarSource, "latent": LatentSource}


def transformed(source: DataSource, spec: str | Mapping[str, Any]) -> DataSource:
    """Wrap ``source`` by the recipe's ``data.transform``: a name or ``{type: NAME, ...keywords}``."""
    kwargs = dict(spec) if isinstance(spec, Mapping) else {"type": spec}
    kind = kwargs.pop("type", None)
    if kind not in TRANSFORMS:
        raise ValueError(f"data.transform must be one of {sorted(TRANSFORMS)} or {{type: NAME, ...}}, got {spec!r}")
    return sections.call(functools.partial(TRANSFORMS[kind], source), kwargs, "data.transform")


def untransformed(source: DataSource) -> DataSource:
    """The source whose examples are in data space: ``source`` with every transform (Haar, latent) unwrapped.
    Metrics compare data-space samples with its examples (not with subbands or latents)."""
    while isinstance(source, tuple(TRANSFORMS.values())):
        source = source.inner
    return source
