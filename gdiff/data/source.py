"""The data-source contract: raw examples on disk or in memory -> batches in model space on the device.

A source is a map-style data set of *raw* examples (``source[i] -> (raw x, label)``): uint8 [C, H, W]
images, float32 points. Workers only decode; the conversion to model space (:meth:`DataSource.to_model`)
runs batched on the device, and :meth:`DataSource.to_data` maps generated samples back. Both are the
source's ``data_map`` (gdiff/data/maps.py), the one part of the data that an exported generator keeps:

    images:   model x = raw / 127.5 - 1 in [-1, 1] (pixel 0 -> -1, 255 -> 1); data space = model space
    mixtures: model x = (raw - shift) / scale; data space = x * scale + shift

Sources small enough to live on the device (mixtures, digits) set ``in_memory`` and hold every raw example
in ``raw`` [N, ...] (and ``labels`` [N]); the batch stream then indexes device tensors instead of running a
DataLoader. ``hflip`` asks the stream for random horizontal flips of images.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gdiff.data.maps import DataMap, PixelRange


class DataSource(torch.utils.data.Dataset):
    """Base class of every data source; subclasses set the attributes and implement ``__getitem__``.

    Attributes:
        data_shape: shape of one example in model space, e.g. (3, 32, 32) or (2,).
        num_classes: > 0 when labels condition the networks (class-conditional training), else 0.
        in_memory: every raw example is in ``raw`` [N, ...] (and ``labels`` [N] or None).
        hflip: the stream flips images horizontally at random (the papers' only augmentation).
        name: what the source is, for messages.
        data_map: raw <-> model space (gdiff/data/maps.py); uint8 pixels by default.
    """

    data_shape: tuple[int, ...] = ()
    num_classes: int = 0
    in_memory: bool = False
    hflip: bool = False
    name: str = "data"
    raw: Tensor | None = None
    labels: Tensor | None = None
    data_map: DataMap = PixelRange(255)

    def __len__(self) -> int:
        if self.raw is None:
            raise NotImplementedError
        return len(self.raw)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        if self.raw is None:
            raise NotImplementedError
        return self.raw[index], -1 if self.labels is None else int(self.labels[index])

    def to_model(self, raw: Tensor) -> Tensor:
        """Raw batch [B, ...] (any device) -> float32 model-space batch on the same device."""
        return self.data_map.to_model(raw)

    def to_data(self, x: Tensor) -> Tensor:
        """Model-space batch -> data space (images: [-1, 1], clamped)."""
        return self.data_map.to_data(x)

    def describe(self) -> dict[str, Any]:
        """A short summary for logs and ``--dry-run``."""
        return {"name": self.name, "size": len(self), "shape": list(self.data_shape),
                "num_classes": self.num_classes, "in_memory": self.in_memory, "hflip": self.hflip}


class MissingDataError(FileNotFoundError):
    """A data set's files are not where the recipe points; the message says which files go where and where
    to obtain them."""
