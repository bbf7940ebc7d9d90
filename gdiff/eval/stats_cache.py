"""gdiff's own cache of reference features and FID statistics: safetensors files, keyed and checksummed.

torch-fidelity's cache (``$TORCH_HOME/fidelity_cache``) stores pickles and unpickles them with
``torch.load(weights_only=False)``; gdiff never lets torch-fidelity cache and never reads that folder. An entry
here is one safetensors file (arrays only: nothing in it can run) named after its key, with metadata

    format  "gdiff-stats-1"
    key     the full key (reference set, extractor, weights digest, feature layer, kind)
    sha256  SHA-256 over every array (name, dtype, shape, bytes; names in sorted order)

A file whose format, key or checksum does not match is refused with a ValueError naming it (delete it and the
entry is recomputed); a missing file is a miss. Entries are written atomically (temporary file, then rename).

Folder: ``FidelityOptions.cache_dir`` / ``--cache-dir``, else ``$GDIFF_CACHE_DIR/fidelity``, else
``$XDG_CACHE_HOME/gdiff/fidelity`` (``~/.cache/gdiff/fidelity``). Clearing it (``rm -r``) loses nothing but time.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

FORMAT = "gdiff-stats-1"


def cache_folder(cache_dir: str | Path | None = None) -> Path:
    """The cache folder: ``cache_dir``, else $GDIFF_CACHE_DIR/fidelity, else $XDG_CACHE_HOME/gdiff/fidelity."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get("GDIFF_CACHE_DIR"):
        return Path(os.environ["GDIFF_CACHE_DIR"]).expanduser() / "fidelity"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"  # the XDG spec ignores relative values
    return root / "gdiff" / "fidelity"


def entry_path(folder: Path, key: str) -> Path:
    """``folder/<key>.safetensors``, the key made file-name safe (long keys end in a digest of the full key)."""
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", key)
    if len(name) > 200:
        name = f"{name[:180]}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    return folder / f"{name}.safetensors"


def checksum(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over (name, dtype, shape, C-order bytes) of every array, names in sorted order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def load_entry(folder: Path, key: str) -> dict[str, np.ndarray] | None:
    """The arrays cached under ``key``, or None when there is no entry; ValueError naming the file when the
    entry is not a gdiff cache file, belongs to another key, or fails its checksum."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    path = entry_path(folder, key)
    if not path.is_file():
        return None
    advice = f"delete it to recompute (or clear the cache folder {folder})"
    try:
        with safe_open(str(path), "np") as f:
            meta = dict(f.metadata() or {})
        arrays = load_file(str(path))
    except Exception as err:  # noqa: BLE001 -- any unreadable entry is reported as that file's error
        raise ValueError(f"{path}: not a gdiff statistics cache file ({str(err).splitlines()[0] if str(err) else err!r}"
                         f"); {advice}") from err
    if meta.get("format") != FORMAT or meta.get("key") != key:
        raise ValueError(f"{path}: cache entry of format {meta.get('format')!r} and key {meta.get('key')!r}, "
                         f"expected {FORMAT!r} and {key!r}; {advice}")
    if meta.get("sha256") != checksum(arrays):
        raise ValueError(f"{path}: cache entry fails its SHA-256 checksum (damaged); {advice}")
    return arrays


def save_entry(folder: Path, key: str, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` under ``key`` (atomically) and return the file."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    path = entry_path(folder, key)
    arrays = {name: np.ascontiguousarray(array) for name, array in arrays.items()}
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        save_file(arrays, str(tmp), metadata={"format": FORMAT, "key": key, "sha256": checksum(arrays)})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
