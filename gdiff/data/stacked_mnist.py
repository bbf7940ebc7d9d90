"""Stacked MNIST (DDGAN's mode-coverage benchmark): three random MNIST digits as the R, G, B channels.

``size`` examples are drawn once with ``seed``: example i stacks digits (a, b, c) from three uniformly drawn
MNIST images, so there are 1000 modes with label ``100 a + 10 b + c``. Each 28 x 28 digit is zero-padded by 2
pixels on every side to 32 x 32 (pixel 0 -> -1 in model space). The labels are the mode labels that the
mode-coverage metric reads; training is unconditional (``num_classes`` 0) and there is no flip (digits).
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gdiff.data.images import CorruptDataError, check_choice, check_int, data_root
from gdiff.data.source import DataSource, MissingDataError

URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_WHAT = ("the MNIST idx files train-images-idx3-ubyte and train-labels-idx1-ubyte (t10k-... for split: test), "
         "gzipped (.gz) or not, directly or in MNIST/raw/ (torchvision's layout); download them from "
         f"http://yann.lecun.com/exdb/mnist/ or its mirror {URL}")


def find_idx(root: Path, name: str) -> Path | None:
    """``name`` or ``name.gz`` in ``root`` or ``root/MNIST/raw``, whichever comes first."""
    for folder in (root, root / "MNIST" / "raw"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def read_idx(path: Path, dims: int) -> np.ndarray:
    """An idx file of unsigned bytes with ``dims`` dimensions (MNIST: 3 for images, 1 for labels) -> uint8 array.

    Layout: 0x00 0x00 0x08 <dims>, then ``dims`` big-endian int32 sizes, then the bytes in row-major order.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            content = f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise CorruptDataError(f"cannot read {path}: {type(err).__name__}: {err}") from err
    if len(content) < 4 + 4 * dims or content[:4] != bytes([0, 0, 8, dims]):
        raise CorruptDataError(f"{path} is not an idx file of unsigned bytes with {dims} dimension(s)")
    shape = tuple(int(v) for v in np.frombuffer(content, dtype=">i4", count=dims, offset=4))
    data = np.frombuffer(content, dtype=np.uint8, offset=4 + 4 * dims)
    if min(shape) < 0 or data.size != math.prod(shape):
        raise CorruptDataError(f"{path}: header says {shape} ({math.prod(shape)} bytes), file holds {data.size}")
    return data.reshape(shape)


def stack_three(images: Tensor, labels: Tensor, size: int, seed: int) -> tuple[Tensor, Tensor]:
    """``size`` stacks of three digits drawn uniformly with ``seed``: images [N, H, W] -> ([size, 3, H, W],
    mode labels 100 a + 10 b + c [size])."""
    picks = torch.randint(0, len(images), (size, 3), generator=torch.Generator().manual_seed(seed))
    digits = labels[picks]
    return images[picks], digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]


class StackedMNIST(DataSource):
    """``raw`` uint8 [size, 3, 32, 32] (one MNIST digit per channel), ``labels`` int64 [size] in 0..999."""

    in_memory = True
    data_shape = (3, 32, 32)

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train", size: int = 60_000,
                 seed: int = 0, name: str = "stacked_mnist") -> None:
        self.root = data_root(root, _WHAT)
        self.split = check_choice("split", split, tuple(FILES))
        size, self.seed = check_int("size", size, 1), check_int("seed", seed, 0)
        self.name = name
        paths = [find_idx(self.root, f) for f in FILES[split]]
        if None in paths:
            missing = [f for f, p in zip(FILES[split], paths, strict=True) if p is None]
            raise MissingDataError(f"MNIST {split}: missing {missing} in data.root = {str(self.root)!r}; "
                                   f"it should hold {_WHAT}")
        images, digits = read_idx(paths[0], 3), read_idx(paths[1], 1)
        if images.shape[1:] != (28, 28) or len(digits) != len(images) or digits.max(initial=0) > 9:
            raise CorruptDataError(f"{paths[0]}, {paths[1]}: expected N 28x28 images and N labels in 0..9, "
                             f"got {images.shape} and {digits.shape}")
        padded = torch.nn.functional.pad(torch.from_numpy(images.copy()), (2, 2, 2, 2))
        self.raw, self.labels = stack_three(padded, torch.from_numpy(digits.astype(np.int64)), size, self.seed)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "root": str(self.root), "split": self.split, "seed": self.seed,
                "modes_present": int(self.labels.unique().numel())}
