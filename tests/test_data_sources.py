"""Image data sources on tiny fake data sets written in their real on-disk formats."""

from __future__ import annotations

import fcntl
import gzip
import io
import os
import pickle
import struct
import sys
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from gdiff.data import SOURCES, MissingDataError, build
from gdiff.data import imagenet64 as imagenet64_module
from gdiff.data.images import fit_square, load_image

# ----------------------------------------------------------------------------------------------- image folder


def _save(path, array, fmt=None, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt, **options)


@pytest.fixture
def folder(tmp_path):
    """root/cats (2 images, one nested), root/dogs (2 images), plus files that are not images."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    _save(root / "cats" / "a.png", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))  # landscape RGB
    _save(root / "cats" / "deep" / "b.WEBP", rng.integers(0, 256, (40, 24, 3), dtype=np.uint8), lossless=True)
    _save(root / "dogs" / "c.jpg", rng.integers(0, 256, (50, 50, 3), dtype=np.uint8), quality=95)
    _save(root / "dogs" / "d.png", rng.integers(0, 256, (9, 13), dtype=np.uint8))  # grey, smaller than 16
    (root / "dogs" / "notes.txt").write_text("not an image")
    _save(root / ".hidden" / "e.png", np.zeros((16, 16, 3), np.uint8))
    _save(root / "dogs" / ".f.png", np.zeros((16, 16, 3), np.uint8))
    return root


def test_image_folder_shapes_and_class_labels(folder):
    source = build({"type": "image_folder", "root": str(folder), "resolution": 16, "class_folders": True})
    assert [p.relative_to(folder).as_posix() for p in source.files] == ["cats/a.png", "cats/deep/b.WEBP",
                                                                       "dogs/c.jpg", "dogs/d.png"]
    assert source.classes == ["cats", "dogs"] and source.num_classes == 2
    assert source.labels.tolist() == [0, 0, 1, 1]
    assert not source.in_memory and source.hflip and source.data_shape == (3, 16, 16)
    for i in range(len(source)):
        x, label = source[i]
        assert x.dtype == torch.uint8 and x.shape == (3, 16, 16) and label == source.labels[i]
    grey, _ = source[3]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[0], grey[2])
    assert source.describe()["size"] == 4 and source.describe()["classes"] == 2
    plain = build({"type": "image_folder", "root": folder, "resolution": 8, "hflip": False})
    assert plain.labels is None and plain.num_classes == 0 and plain[0][1] == -1 and not plain.hflip
    restored = pickle.loads(pickle.dumps(plain))  # DataLoader workers started by spawn get a pickled copy
    assert torch.equal(restored[1][0], plain[1][0])


def test_image_folder_lossless_pixels_and_value_range(tmp_path):
    array = np.zeros((16, 16, 3), np.uint8)
    array[:, 8:] = 255
    _save(tmp_path / "x.png", array)
    source = build({"type": "image_folder", "root": tmp_path, "resolution": 16})
    x, _ = source[0]
    assert torch.equal(x, torch.from_numpy(array).permute(2, 0, 1))  # no resize at the native size
    model = source.to_model(x[None])
    assert model.dtype == torch.float32 and model[0, :, :, :8].eq(-1).all() and model[0, :, :, 8:].eq(1).all()


@pytest.mark.parametrize("landscape", [True, False])
def test_resize_shorter_side_and_centre_crop(landscape):
    # 80 x 40 bands red | green | blue: the centre 40 x 40 (columns 20..60) lies inside the green band with an
    # 8-pixel margin, more than the bicubic kernel's reach at scale 1/2.
    bands = np.zeros((40, 80, 3), np.uint8)
    bands[:, :12, 0], bands[:, 12:68, 1], bands[:, 68:, 2] = 255, 255, 255
    image = Image.fromarray(bands if landscape else bands.transpose(1, 0, 2).copy())
    out = np.asarray(fit_square(image, 20))
    assert out.shape == (20, 20, 3)
    assert np.abs(out.astype(int) - [0, 255, 0]).max() <= 1


def test_centre_stays_centred(tmp_path):
    # a bright 4 x 4 square at the centre of a 64 x 32 image is at the centre of the 16 x 16 output
    array = np.zeros((32, 64), np.uint8)
    array[14:18, 30:34] = 255
    _save(tmp_path / "m.png", array)
    x = load_image(tmp_path / "m.png", 16)[0].double()
    rows, cols = torch.meshgrid(torch.arange(16.0, dtype=torch.float64), torch.arange(16.0, dtype=torch.float64),
                                indexing="ij")
    assert (x * rows).sum() / x.sum() == pytest.approx(7.5, abs=1e-6)
    assert (x * cols).sum() / x.sum() == pytest.approx(7.5, abs=1e-6)


def test_image_folder_errors(tmp_path, folder):
    with pytest.raises(MissingDataError, match="data.root"):
        build({"type": "image_folder", "root": tmp_path / "nowhere", "resolution": 8})
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingDataError, match="no images under data.root"):
        build({"type": "image_folder", "root": tmp_path / "empty", "resolution": 8})
    with pytest.raises(ValueError, match="data.resolution"):
        build({"type": "image_folder", "root": folder})
    with pytest.raises(ValueError, match="data.resolution"):
        build({"type": "image_folder", "root": folder, "resolution": 0})
    with pytest.raises(ValueError, match="data.hflip"):
        build({"type": "image_folder", "root": folder, "resolution": 8, "hflip": "yes"})
    _save(folder / "loose.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="data.class_folders"):
        build({"type": "image_folder", "root": folder, "resolution": 8, "class_folders": True})
    (folder / "dogs" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):  # when the folder is indexed (tests/test_data_robust.py)
        build({"type": "image_folder", "root": folder, "resolution": 8})


# ----------------------------------------------------------------------------------------------------- cifar10


class _Python2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 byte strings, as the official CIFAR-10 batches were written."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_string(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        head = pickle.SHORT_BINSTRING + bytes([len(data)]) if len(data) < 256 else \
            pickle.BINSTRING + struct.pack("<i", len(data))
        self.write(head + data)
        self.memoize(obj)

    dispatch[bytes] = save_string
    dispatch[str] = save_string


def _cifar_batch(data, labels):
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump({"batch_label": "training batch", "labels": labels, "data": data,
                                              "filenames": [f"img_{i}.png" for i in range(len(data))]})
    # the real files name numpy's module as it was in 2009; numpy >= 2 pickles it as numpy._core
    return buffer.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


@pytest.fixture
def cifar(tmp_path):
    """root/cifar-10-batches-py/ with 5 train batches of 4 images and a test batch of 3; returns (root, arrays)."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    arrays = {}
    for name, n in [*[(f"data_batch_{i}", 4) for i in range(1, 6)], ("test_batch", 3)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        data[0, :2] = [0, 255]
        labels = rng.integers(0, 10, n).tolist()
        (folder / name).write_bytes(_cifar_batch(data, labels))
        arrays[name] = (data, labels)
    return tmp_path / "cifar", arrays


def test_cifar10_reads_the_python_batches(cifar):
    root, arrays = cifar
    assert b"numpy.core.multiarray" in (root / "cifar-10-batches-py" / "test_batch").read_bytes()
    source = build({"type": "cifar10", "root": str(root)})
    data = np.concatenate([arrays[f"data_batch_{i}"][0] for i in range(1, 6)])
    labels = sum((arrays[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert source.raw.dtype == torch.uint8 and source.raw.shape == (20, 3, 32, 32) and len(source) == 20
    assert source.labels.tolist() == labels and source.num_classes == 0
    assert source.in_memory and source.hflip and source.data_shape == (3, 32, 32)
    # channel planes: R = first 1024 values (row-major 32 x 32), G the next, B the last
    for c in range(3):
        assert np.array_equal(source.raw[7, c].numpy(), data[7, 1024 * c:1024 * (c + 1)].reshape(32, 32))
    x, label = source[7]
    assert torch.equal(x, source.raw[7]) and label == labels[7]
    assert source.to_model(source.raw[:1])[0, 0, 0, :2].tolist() == [-1.0, 1.0]
    test = build({"type": "cifar10", "root": root / "cifar-10-batches-py", "split": "test", "conditional": True})
    assert len(test) == 3 and test.num_classes == 10 and test.labels.tolist() == arrays["test_batch"][1]
    assert test.describe()["split"] == "test" and test.describe()["size"] == 3


def test_cifar10_accepts_python3_pickles(tmp_path):
    data = np.arange(2 * 3072, dtype=np.uint64).astype(np.uint8).reshape(2, 3072)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({"data": data, "labels": [3, 4]}, protocol=4))
    source = build({"type": "cifar10", "root": tmp_path, "split": "test"})
    assert np.array_equal(source.raw.reshape(2, -1).numpy(), data) and source.labels.tolist() == [3, 4]


class _Exploit:
    def __init__(self, function, argument):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return self.function, (self.argument,)


@pytest.mark.parametrize("kind", ["os.system", "builtins.exec"])
def test_cifar10_crafted_pickle_executes_nothing(tmp_path, kind):
    def payload(marker):
        if kind == "os.system":
            return _Exploit(os.system, f"touch {marker}")
        return _Exploit(exec, f"open({str(marker)!r}, 'w').close()")

    # the payload is live: the standard unpickler runs it
    live = tmp_path / "live"
    pickle.loads(pickle.dumps({"data": payload(live)}, protocol=2))
    assert live.exists()

    marker = tmp_path / "pwned"
    (tmp_path / "test_batch").write_bytes(pickle.dumps({"data": payload(marker), "labels": []}, protocol=2))
    with pytest.raises(ValueError, match=r"test_batch is not a CIFAR-10 python batch: UnpicklingError: refused global"):
        build({"type": "cifar10", "root": tmp_path, "split": "test"})
    assert not marker.exists()


def test_cifar10_refuses_other_numpy_globals_and_bad_content(tmp_path):
    (tmp_path / "test_batch").write_bytes(pickle.dumps({"data": np.load, "labels": []}, protocol=4))
    with pytest.raises(ValueError, match="refused global numpy"):
        build({"type": "cifar10", "root": tmp_path, "split": "test"})
    (tmp_path / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.float32), "labels": [1, 2]}))
    with pytest.raises(ValueError, match="uint8"):
        build({"type": "cifar10", "root": tmp_path, "split": "test"})
    (tmp_path / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [1, 12]}))
    with pytest.raises(ValueError, match="0..9"):
        build({"type": "cifar10", "root": tmp_path, "split": "test"})


def test_cifar10_missing_and_bad_keys(cifar, tmp_path):
    root, _ = cifar
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(MissingDataError, match=r"data_batch_3.*cifar-10-python\.tar\.gz") as err:
        build({"type": "cifar10", "root": root})
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in str(err.value)
    with pytest.raises(ValueError, match="data.root is required"):
        build({"type": "cifar10"})
    with pytest.raises(ValueError, match="data.split"):
        build({"type": "cifar10", "root": root, "split": "val"})
    with pytest.raises(ValueError, match="bogus"):
        build({"type": "cifar10", "root": root, "split": "test", "bogus": 1})


# -------------------------------------------------------------------------------------------------- imagenet64


@pytest.fixture
def imagenet(tmp_path):
    """10 train npz batches (sizes 1..10) one folder down, as the archives extract, and val_data.npz in root."""
    rng = np.random.default_rng(2)
    root = tmp_path / "imagenet64"
    arrays = {}
    for i in range(1, 11):
        data = rng.integers(0, 256, (i, 12288), dtype=np.uint8)
        labels = rng.integers(1, 1001, i).tolist()
        folder = root / f"Imagenet64_train_part{1 + (i > 5)}_npz"
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(folder / f"train_data_batch_{i}.npz", data=data, labels=labels, mean=data.mean(0))
        arrays[i] = (data, labels)
    val = rng.integers(0, 256, (3, 12288), dtype=np.uint8)
    val[0, :2] = [0, 255]
    np.savez_compressed(root / "val_data.npz", data=val, labels=[1, 1000, 7])
    return root, arrays


def test_imagenet64_index_labels_and_cache(imagenet, monkeypatch):
    root, arrays = imagenet
    monkeypatch.setattr(imagenet64_module, "_CHUNK", 5000)  # several partial-image chunks per file
    source = build({"type": "imagenet64", "root": root})
    data = np.concatenate([arrays[i][0] for i in range(1, 11)])
    labels = sum((arrays[i][1] for i in range(1, 11)), [])
    assert len(source) == 55 and source.num_classes == 1000 and source.hflip and not source.in_memory
    assert source.labels.tolist() == [v - 1 for v in labels]
    for i in range(55):  # every row, across all file boundaries
        x, label = source[i]
        assert x.dtype == torch.uint8 and x.shape == (3, 64, 64) and label == labels[i] - 1
        assert np.array_equal(x.numpy().reshape(-1), data[i])
    with pytest.raises(IndexError):
        source[55]
    cache = root / "Imagenet64_train_part1_npz" / "train_data_batch_3.images.npy"
    assert np.load(cache, mmap_mode="r").shape == (3, 3, 64, 64)
    stamp = cache.stat().st_mtime_ns
    again = pickle.loads(pickle.dumps(source))  # what a spawned worker receives: paths, no open maps
    assert again._maps == {} and torch.equal(again[54][0], source[54][0])
    build({"type": "imagenet64", "root": root})
    assert cache.stat().st_mtime_ns == stamp  # a complete cache is reused


def test_imagenet64_val_cache_dir_and_stale_cache(imagenet, tmp_path):
    root, _ = imagenet
    cache_dir = tmp_path / "cache"
    val = build({"type": "imagenet64", "root": root, "split": "val", "conditional": False, "cache_dir": cache_dir})
    assert len(val) == 3 and val.num_classes == 0 and val.labels.tolist() == [0, 999, 6]
    assert (cache_dir / "val_data.images.npy").is_file() and not (root / "val_data.images.npy").exists()
    assert val.to_model(val[0][0][None])[0, 0, 0, :2].tolist() == [-1.0, 1.0]
    assert val.describe()["cache"] == [str(cache_dir)]
    newer = np.full((2, 12288), 9, np.uint8)
    np.savez_compressed(root / "val_data.npz", data=newer, labels=[5, 6])
    os.utime(root / "val_data.npz", ns=(2**62, 2**62))
    rebuilt = build({"type": "imagenet64", "root": root, "split": "val", "cache_dir": cache_dir})
    assert len(rebuilt) == 2 and rebuilt[1][0].eq(9).all() and rebuilt.labels.tolist() == [4, 5]


def test_imagenet64_writer_waits_for_the_lock(imagenet, tmp_path):
    root, arrays = imagenet
    npz, cache = root / "Imagenet64_train_part2_npz" / "train_data_batch_9.npz", tmp_path / "b9.images.npy"
    writer = threading.Thread(target=imagenet64_module.cache_batch, args=(npz, cache))
    with open(tmp_path / "b9.images.npy.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another rank is writing
        writer.start()
        writer.join(0.3)
        assert writer.is_alive() and not cache.exists()
    writer.join(10)
    assert not writer.is_alive() and np.array_equal(np.load(cache).reshape(9, -1), arrays[9][0])
    assert [p.name for p in tmp_path.glob("*.tmp")] == []


def test_imagenet64_errors(imagenet):
    root, _ = imagenet
    (root / "Imagenet64_train_part2_npz" / "train_data_batch_7.npz").unlink()
    with pytest.raises(MissingDataError, match=r"train_data_batch_7\.npz.*Imagenet64_train_part1_npz\.zip"):
        build({"type": "imagenet64", "root": root})
    np.savez_compressed(root / "val_data.npz", data=np.zeros((2, 3072), np.uint8), labels=[1, 2])
    with pytest.raises(ValueError, match=r"val_data\.npz: 'data' must be uint8 \[N, 12288\]"):
        build({"type": "imagenet64", "root": root, "split": "val"})
    np.savez_compressed(root / "val_data.npz", data=np.zeros((2, 12288), np.uint8), labels=[0, 2])
    with pytest.raises(ValueError, match="1..1000"):
        build({"type": "imagenet64", "root": root, "split": "val"})
    with pytest.raises(ValueError, match="data.split"):
        build({"type": "imagenet64", "root": root, "split": "test"})
    with pytest.raises(OSError, match="data.cache_dir"):
        build({"type": "imagenet64", "root": root, "split": "val", "cache_dir": root / "val_data.npz"})


# ----------------------------------------------------------------------------------------------- stacked mnist


def _write_idx(path, array, compress):
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    (gzip.open if compress else open)(path, "wb").write(header + array.tobytes())


@pytest.fixture
def mnist(tmp_path):
    """50 distinct random 'digits' with labels: images gzipped, labels plain (both are accepted)."""
    rng = np.random.default_rng(3)
    images = rng.integers(1, 256, (50, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 50).astype(np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images, True)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", labels, False)
    return tmp_path, images, labels


def _which(channel, candidates):
    """Indices of the candidate images equal to ``channel``."""
    return np.flatnonzero((np.asarray(candidates) == np.asarray(channel)).all(axis=(1, 2))).tolist()


def test_stacked_mnist_channels_labels_and_padding(mnist):
    root, images, labels = mnist
    source = build({"type": "stacked_mnist", "root": str(root), "size": 300, "seed": 5})
    assert source.raw.shape == (300, 3, 32, 32) and source.raw.dtype == torch.uint8
    assert source.num_classes == 0 and source.in_memory and not source.hflip and source.labels.shape == (300,)
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert source.raw[:, :, border].eq(0).all()  # 2-pixel zero padding (-> -1 in model space)
    for i in range(300):
        found = [_which(source.raw[i, c, 2:30, 2:30].numpy(), images) for c in range(3)]
        assert all(len(f) == 1 for f in found)
        a, b, c = (int(labels[f[0]]) for f in found)
        assert source.labels[i] == 100 * a + 10 * b + c
    assert source.to_model(torch.tensor([0, 255], dtype=torch.uint8)).tolist() == [-1.0, 1.0]
    assert source.describe()["size"] == 300


def test_stacked_mnist_seed_determinism_and_layout(mnist, tmp_path):
    root, _, _ = mnist
    first = build({"type": "stacked_mnist", "root": root, "size": 100, "seed": 1})
    assert torch.equal(first.raw, build({"type": "stacked_mnist", "root": root, "size": 100, "seed": 1}).raw)
    assert not torch.equal(first.raw, build({"type": "stacked_mnist", "root": root, "size": 100, "seed": 2}).raw)
    raw = tmp_path / "tv" / "MNIST" / "raw"  # torchvision's layout
    raw.mkdir(parents=True)
    for f in root.glob("train-*"):
        (raw / f.name).write_bytes(f.read_bytes())
    moved = build({"type": "stacked_mnist", "root": tmp_path / "tv", "size": 100, "seed": 1})
    assert torch.equal(moved.raw, first.raw)


def test_stacked_mnist_errors(mnist):
    root, _, _ = mnist
    with pytest.raises(MissingDataError, match=r"t10k-images-idx3-ubyte.*ossci-datasets"):
        build({"type": "stacked_mnist", "root": root, "split": "test"})
    with pytest.raises(ValueError, match="data.size"):
        build({"type": "stacked_mnist", "root": root, "size": 0})
    (root / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 3]) + b"\0" * 12)
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte is not an idx file"):
        build({"type": "stacked_mnist", "root": root})


# ------------------------------------------------------------------------------------------------------ digits


def test_digits_values_labels_and_padding():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    source = build({"type": "digits"})
    assert source.raw.shape == (1797, 1, 8, 8) and source.raw.dtype == torch.uint8 and source.in_memory
    assert np.array_equal(source.raw[:, 0].numpy(), bunch.images) and source.labels.tolist() == bunch.target.tolist()
    assert source.num_classes == 0 and not source.hflip and source.data_shape == (1, 8, 8)
    assert source.to_model(torch.tensor([0, 8, 16], dtype=torch.uint8)).tolist() == [-1.0, 0.0, 1.0]
    x = source.to_model(source.raw)
    assert x.min() == -1 and x.max() == 1
    padded = build({"type": "digits", "resolution": 13, "conditional": True})
    assert padded.num_classes == 10 and padded.data_shape == (1, 13, 13) and padded.raw.shape == (1797, 1, 13, 13)
    assert torch.equal(padded.raw[:, :, 2:10, 2:10], source.raw)
    assert padded.raw.sum() == source.raw.sum()  # the rest is background 0 (-> -1)
    assert source.describe()["size"] == 1797
    with pytest.raises(ValueError, match="data.resolution"):
        build({"type": "digits", "resolution": 4})


def test_stacked_digits_labels_match_channels_and_seed():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    source = build({"type": "stacked_digits", "size": 400, "seed": 7})
    assert source.raw.shape == (400, 3, 8, 8) and source.num_classes == 0 and not source.hflip
    for i in range(400):
        digits = []
        for c in range(3):
            matches = {int(bunch.target[j]) for j in _which(source.raw[i, c].numpy(), bunch.images)}
            assert matches  # every channel is one of the 1,797 digits
            digits.append(matches)
        a, b, c = (int(source.labels[i]) // 100, int(source.labels[i]) // 10 % 10, int(source.labels[i]) % 10)
        assert a in digits[0] and b in digits[1] and c in digits[2]
    same = build({"type": "stacked_digits", "size": 400, "seed": 7})
    assert torch.equal(same.raw, source.raw) and torch.equal(same.labels, source.labels)
    assert not torch.equal(build({"type": "stacked_digits", "size": 400, "seed": 8}).raw, source.raw)


def test_stacked_digits_default_covers_the_modes_evenly():
    source = build({"type": "stacked_digits"})
    assert len(source) == 60_000 and source.describe()["modes_present"] == 1000
    p = torch.bincount(source.labels, minlength=1000).double() / len(source)
    kl = float((p * (p * 1000).log()).sum())  # KL(mode histogram || uniform), as in the DDGAN table
    assert kl < 0.02, kl


def test_digits_without_scikit_learn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        build({"type": "digits"})


# ---------------------------------------------------------------------------------------------------- registry


def test_registry_names():
    assert {"mog25", "mixture", "image_folder", "cifar10", "imagenet64", "stacked_mnist", "digits",
            "stacked_digits"} <= set(SOURCES)
    with pytest.raises(ValueError, match="data.type"):
        build({"type": "cifar100"})
    with pytest.raises(ValueError, match="data.seed"):
        build({"type": "stacked_digits", "seed": -1})


@pytest.mark.parametrize(("section", "named"), [({"type": "mog25", "per_mod": 3}, "per_mode"),
                                                 ({"type": "digits", "resolutoin": 16}, "resolution")])
def test_unknown_data_key_is_named_with_a_suggestion(section, named):
    bad = next(k for k in section if k != "type")
    with pytest.raises(ValueError, match=rf"data\.{bad} \(did you mean '{named}'\?\)"):
        build(section)
