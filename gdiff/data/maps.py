"""Data maps: the invertible, serialisable maps between a source's raw examples and model space.

A data source is raw examples plus one map (``source.data_map``); ``source.to_model`` / ``source.to_data``
delegate to it. The map is all that sampling needs of the data: an exported generator stores
``data_map.bundle(folder)`` (JSON; a map that needs files, such as an autoencoder, copies them into the folder and
names them relative to it) and rebuilds the map with :func:`from_config`, never the data set.

    pixels    model x = raw / (max_value / 2) - 1      data = clamp(x, -1, 1)      (uint8 images: max 255)
    affine    model x = (raw - shift) / scale          data = x * scale + shift    (points, per coordinate)
    haar      model x = scale * haar(inner(raw))       data = inner^-1(ihaar(x / scale))   (WaveDiff)

A transform (Haar, a latent autoencoder) is a map that wraps an inner map; each type is one registry line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from gdiff.data.latent import LatentMap
from gdiff.wavelet import haar, ihaar


class DataMap(Protocol):
    """What every map offers (see the module docstring)."""

    def to_model(self, raw: Tensor) -> Tensor:
        """Raw batch [B, ...] (any device) -> float32 model-space batch on the same device."""

    def to_data(self, x: Tensor) -> Tensor:
        """Model-space batch -> data space."""

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description with its registry ``type``: ``from_config(m.config())`` rebuilds it."""

    def bundle(self, folder: Path) -> dict[str, Any]:
        """The config of a copy of this map whose files live in ``folder`` (written there; paths relative)."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any], root: Path | None = None,
                    inner: DataMap | None = None) -> DataMap:
        """The map a config describes, called by :func:`from_config` with a checked ``type`` and, for a
        transform, its ``inner`` map already rebuilt; relative paths are read from ``root``."""


class PixelRange:
    """Integer pixels 0..``max_value`` <-> [-1, 1]: pixel 0 -> -1, ``max_value`` -> 1; data space is clamped."""

    def __init__(self, max_value: float = 255.0) -> None:
        if not max_value > 0:
            raise ValueError(f"pixels map: max_value must be > 0, got {max_value!r}")
        self.max_value = float(max_value)

    def to_model(self, raw: Tensor) -> Tensor:
        return raw.float() / (self.max_value / 2) - 1

    def to_data(self, x: Tensor) -> Tensor:
        return x.clamp(-1, 1)

    def config(self) -> dict[str, Any]:
        return {"type": "pixels", "max_value": self.max_value}

    def bundle(self, folder: Path) -> dict[str, Any]:
        return self.config()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], root: Path | None = None,
                    inner: DataMap | None = None) -> PixelRange:
        return cls(_field(config, "max_value"))


class Affine:
    """Per-coordinate standardisation of points: x = (raw - shift) / scale; ``shift``, ``scale`` [dim]."""

    def __init__(self, shift: Sequence[float] | Tensor, scale: Sequence[float] | Tensor) -> None:
        self.shift = torch.as_tensor(shift, dtype=torch.float32).reshape(-1)
        self.scale = torch.as_tensor(scale, dtype=torch.float32).reshape(-1)
        if self.shift.shape != self.scale.shape or not bool((self.scale > 0).all()):
            raise ValueError(f"affine map: shift and scale must have one value per coordinate and scale > 0, got "
                             f"{self.shift.tolist()} and {self.scale.tolist()}")

    def to_model(self, raw: Tensor) -> Tensor:
        return (raw.float() - self.shift.to(raw.device)) / self.scale.to(raw.device)

    def to_data(self, x: Tensor) -> Tensor:
        return x * self.scale.to(x) + self.shift.to(x)

    def config(self) -> dict[str, Any]:
        return {"type": "affine", "shift": self.shift.tolist(), "scale": self.scale.tolist()}

    def bundle(self, folder: Path) -> dict[str, Any]:
        return self.config()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], root: Path | None = None,
                    inner: DataMap | None = None) -> Affine:
        return cls(_field(config, "shift"), _field(config, "scale"))


class HaarMap:
    """The inner map followed by the orthonormal Haar transform (gdiff/wavelet.py), times ``scale``:
    [B, C, H, W] <-> [B, 4C, H/2, W/2]."""

    def __init__(self, inner: DataMap, scale: float = 0.5) -> None:
        if not scale > 0:
            raise ValueError(f"data.transform.scale must be > 0, got {scale!r}")
        self.inner, self.scale = inner, float(scale)

    def to_model(self, raw: Tensor) -> Tensor:
        return self.scale * haar(self.inner.to_model(raw))

    def to_data(self, x: Tensor) -> Tensor:
        return self.inner.to_data(ihaar(x / self.scale))

    def config(self) -> dict[str, Any]:
        return {"type": "haar", "scale": self.scale, "inner": self.inner.config()}

    def bundle(self, folder: Path) -> dict[str, Any]:
        return {**self.config(), "inner": self.inner.bundle(folder)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], root: Path | None = None,
                    inner: DataMap | None = None) -> HaarMap:
        return cls(inner, _field(config, "scale"))


def _field(config: Mapping[str, Any], key: str) -> Any:
    if key not in config:
        raise ValueError(f"data map {config.get('type')}: missing key {key!r} in {dict(config)}")
    return config[key]


TRANSFORM_MAPS = ("haar", "latent")  # maps that wrap an ``inner`` map (rebuilt first, then handed over)
# config type -> map class (built by its ``from_config``)
MAPS: dict[str, type] = {"pixels": PixelRange, "affine": Affine, "haar": HaarMap, "latent": LatentMap}


def from_config(config: Mapping[str, Any], root: Path | None = None) -> DataMap:
    """Rebuild a map from its :meth:`DataMap.config` or :meth:`DataMap.bundle` (``root``: the folder its relative
    paths are in); a ValueError names what is wrong."""
    kind = config.get("type") if isinstance(config, Mapping) else None
    if kind not in MAPS:
        raise ValueError(f"data map: 'type' must be one of {sorted(MAPS)}, got {config!r}")
    inner = from_config(_field(config, "inner"), root) if kind in TRANSFORM_MAPS else None
    return MAPS[kind].from_config(config, root, inner)
