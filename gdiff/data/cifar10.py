"""CIFAR-10 from the official python batches, read by an unpickler that can build numpy arrays and nothing else.

Each batch file (``data_batch_1`` ... ``data_batch_5`` for ``split: train``, ``test_batch`` for ``test``) is a
Python-2 pickle of a dict ``{b"data": uint8 [N, 3072] (R, G, B planes of 32 x 32, row-major), b"labels": list of
N ints in 0..9, b"batch_label", b"filenames"}``. A pickle may call any importable function while loading, so
:class:`ArrayUnpickler` resolves only the three globals that rebuild a numpy array
(``numpy.core.multiarray._reconstruct`` (also under numpy 2's ``numpy._core``), ``numpy.ndarray``,
``numpy.dtype``) and refuses every other one: a crafted file stops with an error and runs nothing.

The whole split (50,000 x 3 x 32 x 32 uint8 = 150 MB) is held in ``raw``; with ``in_memory: true`` (default) the
batch stream keeps it on the device.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gdiff.data.images import CorruptDataError, check_bool, check_choice, data_root
from gdiff.data.source import DataSource, MissingDataError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_WHAT = (f"the CIFAR-10 python batches data_batch_1 ... data_batch_5 and test_batch, directly or in "
         f"cifar-10-batches-py/; download {URL} and extract it there (tar xzf cifar-10-python.tar.gz)")

_core = getattr(np, "_core", None) or np.core  # numpy >= 2 names it numpy._core; files name numpy.core
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _core.multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _core.multiarray._reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler whose only globals are numpy's array reconstruction (see the module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: only numpy array reconstruction "
                                         "is allowed in a CIFAR-10 batch")
        return _ALLOWED[(module, name)]


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (images uint8 [N, 3, 32, 32], labels int64 [N]); a CorruptDataError (a ValueError)
    naming the file if malformed.

    The file (30 MB) is read into memory first, so a corrupted length field asks for no more than the file holds.
    """
    try:
        content = path.read_bytes()
    except OSError as err:
        raise CorruptDataError(f"cannot read the CIFAR-10 batch {path}: {err}") from err
    try:
        batch = ArrayUnpickler(io.BytesIO(content), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, OverflowError, UnicodeDecodeError) as err:
        raise CorruptDataError(f"{path} is not a CIFAR-10 python batch: {type(err).__name__}: {err}") from err
    if not isinstance(batch, dict):
        raise CorruptDataError(f"{path} is not a CIFAR-10 python batch: expected a dict, got {type(batch).__name__}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = (data.dtype, data.shape) if isinstance(data, np.ndarray) else type(data).__name__
        raise CorruptDataError(f"{path}: 'data' must be a uint8 array [N, 3072], got {got}")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(type(v) is int for v in labels):
        raise CorruptDataError(f"{path}: 'labels' must be a list of {len(data)} integers")
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise CorruptDataError(f"{path}: labels must lie in 0..9, got {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels


class CIFAR10(DataSource):
    """CIFAR-10 ``split`` as ``raw`` uint8 [N, 3, 32, 32] and ``labels`` int64 [N] (10 classes when conditional)."""

    data_shape = (3, 32, 32)

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train", conditional: bool = False,
                 hflip: bool = True, in_memory: bool = True, name: str = "cifar10") -> None:
        root = data_root(root, _WHAT)
        self.split = check_choice("split", split, tuple(FILES))
        self.hflip = check_bool("hflip", hflip)
        self.in_memory = check_bool("in_memory", in_memory)
        self.num_classes = 10 if check_bool("conditional", conditional) else 0
        self.name = name
        self.root = next((d for d in (root / "cifar-10-batches-py", root) if (d / FILES[split][0]).is_file()), root)
        missing = [f for f in FILES[split] if not (self.root / f).is_file()]
        if missing:
            raise MissingDataError(f"CIFAR-10 {split} split: missing {missing} in data.root = {str(root)!r}; "
                                   f"it should hold {_WHAT}")
        parts = [read_batch(self.root / f) for f in FILES[split]]
        self.raw = torch.from_numpy(np.concatenate([p[0] for p in parts]))
        self.labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "root": str(self.root), "split": self.split}
