"""--protocol ddgan: the bytes the reference pipeline scores (torchvision save_image to .jpg), and its checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gdiff.eval.protocols import PROTOCOLS, jpeg_round_trip, save_image_uint8
from gdiff.sample import to_uint8

torchvision_utils = pytest.importorskip("torchvision.utils")


def test_ddgan_protocol_reproduces_save_image_jpegs(tmp_path: Path) -> None:
    """Independent path: torchvision's save_image writes N.jpg as the reference test scripts do; reading the files
    gives exactly the pixels the protocol hands to the metrics."""
    torch.manual_seed(0)
    x = torch.tanh(2 * torch.randn(4, 3, 32, 32))  # data space [-1, 1]
    prepared = PROTOCOLS["ddgan"].prepare(x)
    for i, image in enumerate((x + 1) / 2):
        torchvision_utils.save_image(image, tmp_path / f"{i}.jpg")
        pixels = torch.from_numpy(np.array(Image.open(tmp_path / f"{i}.jpg"))).permute(2, 0, 1)
        assert torch.equal(to_uint8(prepared[i:i + 1])[0], pixels)
    assert not torch.equal(to_uint8(prepared), to_uint8(x))  # JPEG changed the pixels


def test_quantisation_matches_save_image(tmp_path: Path) -> None:
    """save_image to a lossless PNG shows its quantisation, values at the rounding boundaries included."""
    x = torch.linspace(-1.2, 1.2, 3 * 1001).reshape(1, 3, 1, -1)
    torchvision_utils.save_image((x[0] + 1) / 2, tmp_path / "q.png")
    pixels = torch.from_numpy(np.array(Image.open(tmp_path / "q.png"))).permute(2, 0, 1)
    assert torch.equal(save_image_uint8(x)[0], pixels)


def test_gdiff_protocol_is_lossless_and_grey_images_round_trip() -> None:
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    assert PROTOCOLS["gdiff"].prepare(x) is x
    grey = torch.randint(0, 256, (2, 1, 16, 16), dtype=torch.uint8)
    assert jpeg_round_trip(grey).shape == grey.shape


def test_ddgan_protocol_checks_count_and_split() -> None:
    ddgan = PROTOCOLS["ddgan"]
    ddgan.check(50_000, "train")
    with pytest.raises(ValueError, match="--num"):
        ddgan.check(10_000, "train")
    with pytest.raises(ValueError, match="train split"):
        ddgan.check(50_000, "test")
    PROTOCOLS["gdiff"].check(123, "test")
