"""Data sources refuse broken files by name, before the first step, and convert every pixel mode exactly."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from gdiff.data import build
from gdiff.data.images import CorruptDataError, to_rgb


def _png(width: int, height: int, rows: np.ndarray, colour_type: int, bit_depth: int) -> bytes:
    """A PNG written by hand (Pillow cannot write 16-bit colour): rows [H, W * channels] big-endian samples."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\0" + row.tobytes() for row in rows)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _load(tmp_path, name: str, content: bytes, size: int) -> torch.Tensor:
    """Pixels [3, H, W] of one file read by an image_folder source at its native size (no resize)."""
    folder = tmp_path / name.split(".")[0]
    folder.mkdir()
    (folder / name).write_bytes(content)
    source = build({"type": "image_folder", "root": folder, "resolution": size, "hflip": False})
    return source[0][0]


def _saved(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


# -------------------------------------------------------------------------------------------- pixel conversion
def test_16_bit_grey_png_is_scaled_not_saturated(tmp_path):
    ramp = np.array([0, 128, 129, 257, 1000, 32896, 65278, 65535], dtype=np.uint16)
    tile = np.tile(ramp, (8, 1))
    content = _saved(Image.fromarray(tile))
    assert Image.open(io.BytesIO(content)).mode == "I;16"
    x = _load(tmp_path, "tile.png", content, 8)
    expected = [0, 0, 1, 1, 4, 128, 254, 255]  # round(v / 257); Pillow's own convert gave 0, 128, 129, 255, ...
    assert np.rint(ramp / 257).tolist() == expected
    for c in range(3):
        assert x[c].numpy().tolist() == [expected] * 8


@pytest.mark.parametrize("mode", ["I;16B", "I"])
def test_16_and_32_bit_grey_modes_in_memory(mode):
    values = np.array([[0, 257, 1000, 65535, 70000, -5]], dtype=np.int64)
    image = Image.fromarray(values.astype(np.int32), "I")
    if mode == "I;16B":
        image = Image.frombytes("I;16B", (4, 1), values[0, :4].astype(">u2").tobytes())
    out = np.asarray(to_rgb(image))
    assert out.dtype == np.uint8 and out.shape[-1] == 3
    want = [0, 1, 4, 255, 255, 0][: out.shape[1]]  # 70000 and -5 (32-bit "I" only) clip to 255 and 0
    assert out[0, :, 0].tolist() == want and (out[..., 0] == out[..., 2]).all()


def test_16_bit_colour_png_keeps_the_high_byte(tmp_path):
    samples = np.array([0, 257, 65535, 1000, 32896, 65280], dtype=">u2")
    rows = np.tile(samples, (2, 1))  # 2 x 2 pixels: the 2 RGB pixels above on each row
    x = _load(tmp_path, "colour.png", _png(2, 2, rows, 2, 16), 2)
    # Pillow decodes 16-bit colour to 8 bits by the high byte: floor(v / 256) (65280 -> 255, round(v/257) is 254)
    assert x[:, 1, :].T.tolist() == [[0, 1, 255], [3, 128, 255]]


def test_alpha_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = (100, 0, 255), 128
    rgba[0, 0, 3], rgba[0, 1, 3] = 0, 255
    x = _load(tmp_path, "alpha.png", _saved(Image.fromarray(rgba, "RGBA")), 4)
    c, a = np.array([100.0, 0, 255]), 128
    half = np.rint((c * a + 255 * (255 - a)) / 255).tolist()
    assert half == [177, 127, 255]
    assert x[:, 1, 1].tolist() == half and x[:, 0, 0].tolist() == [255, 255, 255]
    assert x[:, 0, 1].tolist() == [100, 0, 255]
    la = np.stack([np.full((4, 4), 40, np.uint8), np.full((4, 4), 64, np.uint8)], axis=-1)
    grey = _load(tmp_path, "la.png", _saved(Image.fromarray(la, "LA")), 4)
    assert grey[:, 2, 2].tolist() == [round((40 * 64 + 255 * 191) / 255)] * 3


def test_palette_with_and_without_transparency(tmp_path):
    palette = Image.new("P", (4, 4))
    palette.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    palette.putpixel((1, 1), 1)
    plain = _load(tmp_path, "plain.png", _saved(palette), 4)
    assert plain[:, 0, 0].tolist() == [10, 20, 30] and plain[:, 1, 1].tolist() == [200, 100, 50]
    see_through = _load(tmp_path, "clear.png", _saved(palette, transparency=0), 4)  # colour 0 is transparent
    assert see_through[:, 0, 0].tolist() == [255, 255, 255] and see_through[:, 1, 1].tolist() == [200, 100, 50]


def test_cmyk_grey_and_bilevel(tmp_path):
    cmyk = Image.new("CMYK", (2, 1))
    cmyk.putpixel((0, 0), (255, 0, 0, 0))
    cmyk.putpixel((1, 0), (0, 0, 0, 255))
    assert np.asarray(to_rgb(cmyk)).tolist() == [[[0, 255, 255], [0, 0, 0]]]
    assert np.asarray(to_rgb(Image.new("L", (1, 1), 77))).tolist() == [[[77, 77, 77]]]
    assert np.asarray(to_rgb(Image.new("1", (1, 1), 1))).tolist() == [[[255, 255, 255]]]
    jpeg = _load(tmp_path, "cmyk.jpg", _saved(Image.new("CMYK", (8, 8), (0, 0, 0, 0)), "JPEG", quality=100), 8)
    assert (jpeg.int() - 255).abs().max() <= 1  # CMYK white through a real JPEG file


# ------------------------------------------------------------------------------------------- broken image files
@pytest.fixture
def broken_folder(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    good = _saved(Image.new("RGB", (32, 32), (1, 2, 3)))
    jpeg = _saved(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)), "JPEG")
    (root / "a_good.png").write_bytes(good)
    (root / "b_truncated.png").write_bytes(good[: len(good) // 2])
    (root / "c_truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "d_text.png").write_bytes(b"not an image at all")
    (root / "e_good.jpg").write_bytes(jpeg)
    return root


def test_broken_images_are_named_when_the_folder_is_indexed(broken_folder):
    with pytest.raises(CorruptDataError) as info:
        build({"type": "image_folder", "root": broken_folder, "resolution": 8})
    message = str(info.value)
    assert isinstance(info.value, ValueError) and "3 of 5 image files" in message
    for name in ("b_truncated.png", "c_truncated.jpg", "d_text.png"):
        assert name in message
    assert "a_good" not in message and "e_good" not in message and "data.on_bad_file: skip" in message


def test_on_bad_file_skip_warns_and_leaves_them_out(broken_folder):
    with pytest.warns(UserWarning, match=r"leaving out 3 of 5 .*b_truncated\.png"):
        source = build({"type": "image_folder", "root": broken_folder, "resolution": 8, "on_bad_file": "skip"})
    assert [p.name for p in source.files] == ["a_good.png", "e_good.jpg"]
    assert source[0][0][:, 0, 0].tolist() == [1, 2, 3] and source[1][0].shape == (3, 8, 8)
    with pytest.raises(ValueError, match=r"data\.on_bad_file must be one of \['error', 'skip'\]"):
        build({"type": "image_folder", "root": broken_folder, "resolution": 8, "on_bad_file": "ignore"})


# --------------------------------------------------------------------------------------------- cifar10, mnist
def _cifar_test_batch(path, labels=(1, 2)):
    data = np.zeros((len(labels), 3072), np.uint8)
    path.write_bytes(pickle.dumps({"data": data, "labels": list(labels)}, protocol=4))


@pytest.mark.parametrize("damage", ["header", "truncated", "huge_length", "float_labels", "empty"])
def test_corrupted_cifar10_batch_is_named(tmp_path, damage):
    path = tmp_path / "test_batch"
    _cifar_test_batch(path, labels=(1.0, 2.0) if damage == "float_labels" else (1, 2))
    content = path.read_bytes()
    if damage == "header":
        content = b"\x80\x09" + content[2:]  # an unknown pickle protocol
    elif damage == "truncated":
        content = content[: len(content) // 2]
    elif damage == "huge_length":  # the 8-byte frame length of protocol 4 set to 2**62
        assert content[2:3] == pickle.FRAME
        content = content[:3] + struct.pack("<Q", 2**62) + content[11:]
    elif damage == "empty":
        content = b""
    path.write_bytes(content)
    with pytest.raises(CorruptDataError, match=r"test_batch"):
        build({"type": "cifar10", "root": tmp_path, "split": "test"})


@pytest.mark.parametrize("damage", ["gzip_body", "truncated_gzip", "negative_size", "short"])
def test_corrupted_mnist_idx_is_named(tmp_path, damage):
    images = np.ones((4, 28, 28), np.uint8)
    header = bytes([0, 0, 8, 3]) + struct.pack(">3i", -4 if damage == "negative_size" else 4, 28, 28)
    packed = gzip.compress(header + images.tobytes())
    if damage == "gzip_body":
        packed = packed[:12] + bytes(b ^ 0xFF for b in packed[12:40]) + packed[40:]
    elif damage == "truncated_gzip":
        packed = packed[: len(packed) // 2]
    elif damage == "short":
        packed = gzip.compress(header + images.tobytes()[:-1])
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(packed)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">i", 4) + bytes(4))
    with pytest.raises(CorruptDataError, match=r"train-images-idx3-ubyte\.gz"):
        build({"type": "stacked_mnist", "root": tmp_path, "size": 4})


# ------------------------------------------------------------------------------------------------- imagenet64
@pytest.mark.parametrize("damage", ["not_a_zip", "truncated", "bad_crc", "float_labels", "not_npy"])
def test_corrupted_imagenet64_npz_is_named(tmp_path, damage):
    path = tmp_path / "val_data.npz"
    labels = [1.0, 2.0] if damage == "float_labels" else [1, 2]
    np.savez(path, data=np.arange(2 * 12288, dtype=np.int64).astype(np.uint8).reshape(2, 12288), labels=labels)
    content = path.read_bytes()
    if damage == "not_a_zip":
        content = b"just some text"
    elif damage == "truncated":
        content = content[: len(content) // 2]
    elif damage == "bad_crc":  # stored (uncompressed) member: flip pixel bytes, the CRC no longer matches
        at = content.index(b"\x00\x01\x02\x03\x04\x05\x06\x07")
        content = content[:at] + b"\xff" * 8 + content[at + 8:]
    elif damage == "not_npy":
        content = content.replace(b"\x93NUMPY", b"\x93NUMPX")
    path.write_bytes(content)
    with pytest.raises(CorruptDataError, match=r"val_data\.npz"):
        build({"type": "imagenet64", "root": tmp_path, "split": "val", "cache_dir": tmp_path / "cache"})
