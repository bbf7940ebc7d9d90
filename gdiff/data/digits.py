"""scikit-learn's bundled 8 x 8 handwritten digits (1,797 images, 10 classes, no download), single or stacked.

Pixels are counts 0..16 (``raw`` uint8), so model space is ``x = raw / 8 - 1`` (0 -> -1, 16 -> 1). An optional
``resolution`` > 8 pads each image with background (0 -> -1) to resolution x resolution, the 8 x 8 digit at
rows and columns ``(resolution - 8) // 2`` onwards, for networks that need a larger input.

``digits``: one grey channel, labels = digit classes (``conditional: true`` -> 10 classes).
``stacked_digits``: three digits drawn uniformly with ``seed`` as the R, G, B channels, 1000 modes with label
``100 a + 10 b + c`` (the offline stand-in for Stacked MNIST; unconditional). Default ``size`` 60,000, the size of
Stacked MNIST: with 60 examples per mode the data's own mode histogram is close to uniform (expected
KL(histogram || uniform) ~ 999 / (2 x 60,000) = 0.008 nats; with 10,000 examples it would be 0.05, near DDGAN's
reported 0.071, which would blur the metric). It costs 11.5 MB.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from gdiff.data.images import check_bool, check_int
from gdiff.data.maps import PixelRange
from gdiff.data.source import DataSource
from gdiff.data.stacked_mnist import stack_three


def load_sklearn_digits(resolution: int) -> tuple[Tensor, Tensor]:
    """The 1,797 digits as uint8 [N, resolution, resolution] (0..16, centred, zero-padded) and int64 labels [N]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError("data.type digits / stacked_digits needs scikit-learn: pip install scikit-learn") from err
    bunch = load_digits()
    images = torch.from_numpy(np.rint(bunch.images).astype(np.uint8))
    before = (resolution - 8) // 2
    images = torch.nn.functional.pad(images, (before, resolution - 8 - before) * 2)
    return images, torch.from_numpy(bunch.target.astype(np.int64))


class _Digits(DataSource):
    """Shared by both digit sources: pixel counts 0..16 to and from [-1, 1]."""

    in_memory = True
    data_map = PixelRange(16)  # uint8 counts 0..16 -> x = raw / 8 - 1 in [-1, 1]


class Digits(_Digits):
    """``raw`` uint8 [1797, 1, R, R] in 0..16, ``labels`` int64 [1797] (digit classes)."""

    def __init__(self, conditional: bool = False, resolution: int = 8, name: str = "digits") -> None:
        resolution = check_int("resolution", resolution, 8)
        self.num_classes = 10 if check_bool("conditional", conditional) else 0
        self.name = name
        images, self.labels = load_sklearn_digits(resolution)
        self.raw = images[:, None]
        self.data_shape = (1, resolution, resolution)


class StackedDigits(_Digits):
    """``raw`` uint8 [size, 3, R, R] (one digit per channel), ``labels`` int64 [size] = 100 a + 10 b + c."""

    def __init__(self, size: int = 60_000, seed: int = 0, resolution: int = 8, name: str = "stacked_digits") -> None:
        resolution = check_int("resolution", resolution, 8)
        size, self.seed = check_int("size", size, 1), check_int("seed", seed, 0)
        self.name = name
        self.raw, self.labels = stack_three(*load_sklearn_digits(resolution), size, self.seed)
        self.data_shape = (3, resolution, resolution)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "seed": self.seed, "modes_present": int(self.labels.unique().numel())}
