"""Shared pieces of the image sources: decoding to uint8 [C, H, W], the square resize-and-crop, recipe checks.

Every image source hands out raw uint8 [C, H, W] tensors; :meth:`DataSource.to_model` maps pixel 0 to -1 and
255 to 1. :func:`fit_square` is the geometry of every resized data set: scale so the SHORTER side equals
``resolution`` (PIL's antialiased bicubic), then crop the central ``resolution x resolution`` square
(``left = (W' - r) // 2``, ``top = (H' - r) // 2`` on the resized image).

:func:`to_rgb` turns every PIL mode into 8-bit RGB (docs/data.md, "Pixel conversion"):

    16-bit grey (I;16, I;16B, I;16L, I)   v8 = round(v16 / 257), clipped to 0..255, on all three channels
    16-bit colour PNG                      Pillow itself keeps the high byte: v8 = floor(v16 / 256)
    alpha (RGBA, LA, PA, P with a transparent colour)   composited on white:
                                           v = round((c a + 255 (255 - a)) / 255), a in 0..255
    grey (L, 1), palette (P), CMYK, YCbCr  Pillow's conversion to RGB (grey repeated on the three channels)
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
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


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


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL image -> 8-bit RGB by the rules of the module docstring (16-bit scaled, alpha on white)."""
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.float64)
        grey = np.clip(np.rint(values / 257), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ALPHA_MODES:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64)
        alpha = rgba[..., 3:]
        rgb = np.rint((rgba[..., :3] * alpha + 255 * (255 - alpha)) / 255)
        return Image.fromarray(rgb.astype(np.uint8))
    return image.convert("RGB")


def load_image(path: str | os.PathLike, resolution: int) -> Tensor:
    """Decode an image file (PNG, JPEG, WebP; any PIL mode, :func:`to_rgb`) to RGB uint8 [3, resolution,
    resolution]; an OSError names the file."""
    try:
        with Image.open(path) as image:
            rgb = to_rgb(image)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise OSError(f"cannot decode image {path}: {err}") from err
    return to_chw(fit_square(rgb, resolution))


def check_image(path: str | os.PathLike) -> str | None:
    """Why the image file cannot be used, or None; cheap (about 0.1 ms for a small PNG or JPEG).

    The header is parsed (``Image.open``), then PNG: ``verify()`` reads every chunk and checks its CRC (a
    truncated or damaged file fails; nothing is decompressed). JPEG: the file must end with the end-of-image
    marker FF D9 (in its last 64 bytes), which a truncated file lacks; a full decode would cost about as much as
    training reads it (20 ms for 1024 x 1024) and libjpeg decodes damaged entropy data with a warning anyway.
    Other formats (WebP): decoded in full.
    """
    try:
        with Image.open(path) as image:
            if image.format == "PNG":
                image.verify()
            elif image.format == "JPEG":
                with open(path, "rb") as f:
                    f.seek(max(0, os.fstat(f.fileno()).st_size - 64))
                    if b"\xff\xd9" not in f.read():
                        return "truncated JPEG: no end-of-image marker"
            else:
                image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        return f"{type(err).__name__}: {err}"
    return None


class CorruptDataError(ValueError):
    """A data file that exists but cannot be read as what it should be; the message names the file."""


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
