"""Downsampled ImageNet 64 x 64 (Chrabaszcz et al. 2017) with its 1000 class labels, memory-mapped.

The official npz batches (``train_data_batch_1.npz`` ... ``_10.npz``, ``val_data.npz``) hold ``data`` uint8
[N, 12288] (R, G, B planes of 64 x 64, row-major, so a row reshapes to [3, 64, 64]) and ``labels`` 1..1000.
The training set is 1.28 M images (15.7 GB), too big for memory, and the arrays are zip-compressed, so they
cannot be memory-mapped where they are. On first use each batch's ``data`` is streamed (4 MB at a time, never
the whole array in memory) into an uncompressed ``<batch>.images.npy`` [N, 3, 64, 64] in ``cache_dir``
(default: beside the npz files; the same bytes, so 15.7 GB for the training split), written atomically under
an exclusive lock (concurrent ranks wait for one writer). Later runs and every DataLoader worker memory-map
those files, so a random batch reads only its own rows (the page cache does the rest). A per-worker LRU of one
decompressed file would instead decompress 1.5 GB for nearly every shuffled example. Labels (int64, 10 MB)
are read from the npz files into memory.
"""

from __future__ import annotations

import bisect
import fcntl
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gdiff.data.images import CorruptDataError, check_bool, check_choice, data_root
from gdiff.data.source import DataSource, MissingDataError

URL = "https://image-net.org/download-images.php"
FILES = {"train": [f"train_data_batch_{i}.npz" for i in range(1, 11)], "val": ["val_data.npz"]}
_WHAT = ("the downsampled ImageNet 64x64 npz batches train_data_batch_1.npz ... train_data_batch_10.npz and "
         "val_data.npz (directly or one folder down, as the archives extract); download Imagenet64_train_part1_npz"
         f".zip, Imagenet64_train_part2_npz.zip and Imagenet64_val_npz.zip ('Download downsampled images', "
         f"64x64) from {URL} (an ImageNet account is needed) and unzip them there")
_SHAPE = (3, 64, 64)
_CHUNK = 4 << 20  # bytes per read; larger reads only cost memory (zipfile joins pieces)


def _npy_header(stream: Any, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of an open .npy stream, positioned at the data."""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(stream)
        if version in ((2, 0), (3, 0)):
            return np.lib.format.read_array_header_2_0(stream)
    except ValueError as err:
        raise CorruptDataError(f"{where}: not a .npy array: {err}") from err
    raise CorruptDataError(f"{where}: unsupported .npy version {version}")


def _cache_ok(cache: Path, npz: Path, count: int) -> bool:
    """``cache`` exists, is newer than ``npz`` and holds [count, 3, 64, 64]."""
    try:
        return (cache.stat().st_mtime >= npz.stat().st_mtime
                and np.load(cache, mmap_mode="r").shape == (count, *_SHAPE))
    except (OSError, ValueError):
        return False


def cache_batch(npz: Path, cache: Path) -> int:
    """Make ``cache`` a uint8 .npy [N, 3, 64, 64] of ``npz``'s ``data`` (kept if already complete); returns N.
    A file that is not a readable npz archive (not a zip, truncated, a bad CRC) is a CorruptDataError naming it.

    The writer holds an exclusive lock on ``<cache>.lock`` (concurrent ranks wait for it, then find the cache
    complete) and writes under a temporary name renamed into place. A complete cache is only read, so it may
    sit in a read-only folder.
    """
    try:
        return _cache_batch(npz, cache)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as err:
        raise CorruptDataError(f"{npz} is not a readable npz archive: {type(err).__name__}: {err}") from err


def _cache_batch(npz: Path, cache: Path) -> int:
    width = int(np.prod(_SHAPE))
    with zipfile.ZipFile(npz) as archive:
        if "data.npy" not in archive.namelist():
            raise CorruptDataError(f"{npz}: no 'data' array (members: {archive.namelist()})")
        with archive.open("data.npy") as member:
            shape, fortran, dtype = _npy_header(member, f"{npz}:data")
            if dtype != np.uint8 or fortran or len(shape) != 2 or shape[1] != width:
                raise CorruptDataError(f"{npz}: 'data' must be uint8 [N, {width}] in C order, got {dtype} {shape}")
            count = shape[0]
            if _cache_ok(cache, npz, count):
                return count
            tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
            try:
                with open(cache.with_name(cache.name + ".lock"), "a") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    if _cache_ok(cache, npz, count):  # another process wrote it while we waited
                        return count
                    with open(tmp, "wb") as out:
                        header = {"descr": "|u1", "fortran_order": False, "shape": (count, *_SHAPE)}
                        np.lib.format.write_array_header_1_0(out, header)
                        done, total = 0, count * width
                        while done < total:
                            chunk = member.read(min(_CHUNK, total - done))
                            if not chunk:
                                raise CorruptDataError(f"{npz}: 'data' ends after {done} of {total} bytes")
                            out.write(chunk)
                            done += len(chunk)
                    os.replace(tmp, cache)
            except OSError as err:
                raise OSError(f"cannot write the image cache {cache} ({err}); point data.cache_dir at a "
                              f"writable folder with {count * width / 1e9:.1f} GB free") from err
            finally:
                tmp.unlink(missing_ok=True)
    return count


def read_labels(npz: Path, count: int) -> np.ndarray:
    """``labels`` 1..1000 of one npz batch -> int64 [count] in 0..999; integers only (floats are refused,
    never truncated)."""
    try:
        with np.load(npz) as arrays:
            labels = np.asarray(arrays["labels"]).reshape(-1)
    except (KeyError, ValueError, TypeError, zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise CorruptDataError(f"{npz}: no readable 'labels' array ({type(err).__name__}: {err})") from err
    if labels.dtype.kind not in "iu":
        raise CorruptDataError(f"{npz}: 'labels' must be integers, got an array of {labels.dtype}")
    labels = labels.astype(np.int64)
    if len(labels) != count:
        raise CorruptDataError(f"{npz}: {len(labels)} labels for {count} images")
    if count and (labels.min() < 1 or labels.max() > 1000):
        raise CorruptDataError(f"{npz}: labels must lie in 1..1000, got {labels.min()}..{labels.max()}")
    return labels - 1


class ImageNet64(DataSource):
    """ImageNet 64 x 64 ``split``: uint8 [3, 64, 64] examples read from memory-mapped caches; ``labels`` [N]."""

    data_shape = _SHAPE

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train", conditional: bool = True,
                 hflip: bool = True, cache_dir: str | os.PathLike | None = None, name: str = "imagenet64") -> None:
        self.root = data_root(root, _WHAT)
        self.split = check_choice("split", split, tuple(FILES))
        self.hflip = check_bool("hflip", hflip)
        self.num_classes = 1000 if check_bool("conditional", conditional) else 0
        self.name = name
        found = {f: next((p for p in [self.root / f, *sorted(self.root.glob(f"*/{f}"))] if p.is_file()), None)
                 for f in FILES[split]}
        missing = [f for f, p in found.items() if p is None]
        if missing:
            raise MissingDataError(f"ImageNet 64x64 {split} split: missing {missing} under data.root = "
                                   f"{str(self.root)!r}; it should hold {_WHAT}")
        if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
            raise ValueError(f"data.cache_dir must be a path, got {cache_dir!r}")
        cache = None if cache_dir is None else Path(cache_dir).expanduser()
        if cache is not None:
            try:
                cache.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise OSError(f"data.cache_dir = {str(cache)!r} cannot be made a folder: {err}") from err
        self.files: list[Path] = []
        counts, labels = [], []
        for npz in found.values():
            target = (cache or npz.parent) / f"{npz.name.removesuffix('.npz')}.images.npy"
            counts.append(cache_batch(npz, target))
            labels.append(read_labels(npz, counts[-1]))
            self.files.append(target)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).tolist()  # file k holds rows offsets[k]..[k+1]-1
        self.labels = torch.from_numpy(np.concatenate(labels))
        self._maps: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        k = bisect.bisect_right(self.offsets, index) - 1
        if k not in self._maps:  # opened lazily in each process (workers included)
            self._maps[k] = np.load(self.files[k], mmap_mode="r")
        return torch.from_numpy(np.array(self._maps[k][index - self.offsets[k]])), int(self.labels[index])

    def __getstate__(self) -> dict[str, Any]:
        """Workers get the paths, not the maps (a pickled memmap would copy the whole array)."""
        return {**self.__dict__, "_maps": {}}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "root": str(self.root), "split": self.split,
                "cache": sorted({str(f.parent) for f in self.files})}
