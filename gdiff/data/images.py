"""Shared pieces of the image sources: decoding to uint8 [C, H, W], the square resize-and-crop, recipe checks.

Every image source hands out raw uint8 [C, H, W] tensors; :meth:`DataSource.to_model` maps pixel 0 to -1 and
255 to 1. :func:`fit_square` is the geometry of every resized data set: scale so the SHORTER side equals
``resolution`` (PIL's antialiased bicubic), then crop the central ``resolution x resolution`` square
(``left = (W' - r) // 2``, ``top = (H' - r) // 2`` on the resized image).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from gdiff.data.source import MissingDataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")


def fit_square(image: Image.Image, resolution: int) -> Image.Image:
    """Resize so that min(W, H) = ``resolution`` (aspect kept), then centre-crop to resolution x resolution."""
    width, height = image.size
    scale = resolution / min(width, height)
    size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    if size != image.size:
        image = image.resize(size, resample=Image.Resampling.BICUBIC)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    return image.crop((left, top, left + resolution, top + resolution))


def to_chw(image: Image.Image) -> Tensor:
    """PIL image (RGB or L) -> uint8 tensor [C, H, W] (C = 3 or 1)."""
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def load_image(path: str | os.PathLike, resolution: int) -> Tensor:
    """Decode an image file (PNG, JPEG, WebP; any PIL mode) to RGB uint8 [3, resolution, resolution].

    Grey images are repeated over the three channels; an alpha channel is dropped (the stored colours are kept).
    """
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (OSError, Image.DecompressionBombError) as err:
        raise OSError(f"cannot decode image {path}: {err}") from err
    return to_chw(fit_square(rgb, resolution))


def check_int(key: str, value: object, minimum: int) -> int:
    """A recipe integer ``data.<key>`` >= minimum (bools refused), or a ValueError naming the key."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"data.{key} must be an integer >= {minimum}, got {value!r}")
    return value


def check_bool(key: str, value: object) -> bool:
    """A recipe boolean ``data.<key>``, or a ValueError naming the key."""
    if not isinstance(value, bool):
        raise ValueError(f"data.{key} must be true or false, got {value!r}")
    return value


def check_choice(key: str, value: object, choices: tuple[str, ...]) -> str:
    """One of ``choices`` for ``data.<key>``, or a ValueError naming the key."""
    if value not in choices:
        raise ValueError(f"data.{key} must be one of {list(choices)}, got {value!r}")
    return str(value)


def data_root(root: str | os.PathLike | None, what: str) -> Path:
    """``data.root`` as an existing directory (``~`` expanded); ``what`` (layout and download) ends the errors."""
    if root is None:
        raise ValueError(f"data.root is required: the folder that holds {what}")
    if not isinstance(root, (str, os.PathLike)):
        raise ValueError(f"data.root must be a path, got {root!r}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise MissingDataError(f"data.root = {str(path)!r} is not a directory; it should hold {what}")
    return path
