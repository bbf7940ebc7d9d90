"""``data.transform: {type: latent, autoencoder: PATH, scale: S, cache_dir: DIR}``: train on an autoencoder's latents.

The pixel source is encoded ONCE into a memory-mapped float32 ``.npy`` [N', c, h, w] of latents z (the raw examples
of this source; gdiff/data/latent.py maps them to model space x = z / scale and decodes samples). Training never
runs the encoder; sampling runs the decoder once per image.

* Encoding mode: the posterior mean. It is a pure function of the image, so the cache is too; a cached *sample*
  would freeze one noise draw per image forever, which is neither LDDGAN's fresh per-step sample nor the mean.
  With kl_weight 1e-6 the posterior standard deviation is small next to the diffusion noise.
* Flips happen before encoding: a flipped image's latent is not the flipped latent. When the pixel source flips
  (``hflip``), both orientations are cached (rows N..2N-1 hold the mirrored images) and this source holds the 2N
  examples without random flips: one epoch sees every image once in each orientation.
* Key: sha256 of the autoencoder's digest (class, config, weights), the data set (its description without
  storage options, its pixel map and a fingerprint of its raw bytes: all of them in memory, else 64 evenly spaced
  examples), the resolution (the pixel shape), the encoding mode and the number of orientations. The file is
  ``<cache_dir>/<name>-<key>.latents.npy`` with a JSON beside it that spells the key out.
* Written like the ImageNet-64 cache: under an exclusive lock on ``<file>.lock``, into a temporary file renamed
  into place. A file that does not open as float32 of exactly the expected shape (truncated, another format) is
  rebuilt, never trusted; another key is another file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from gdiff.autoencoders.adapter import KEY
from gdiff.data.latent import LatentMap
from gdiff.data.source import DataSource, MissingDataError

MODE = "posterior_mean"
FORMAT = 1  # bump when the cache layout changes
ENCODE_BATCH = 128
FINGERPRINT_EXAMPLES = 64
_STORAGE_KEYS = ("in_memory", "hflip", "cache", "size")  # describe() entries that do not change the latents


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gdiff" / "latents"


def data_identity(source: DataSource) -> dict[str, Any]:
    """What decides a pixel source's examples: class, description, pixel map, count and a digest of raw bytes."""
    described = {k: v for k, v in source.describe().items() if k not in _STORAGE_KEYS}
    n = len(source)
    h = hashlib.sha256()
    if source.raw is not None:
        h.update(source.raw.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    else:
        for i in np.linspace(0, n - 1, min(n, FINGERPRINT_EXAMPLES)).round().astype(int).tolist():
            h.update(torch.as_tensor(source[i][0]).contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return {"class": type(source).__name__, "description": described, "data_map": source.data_map.config(),
            "count": n, "raw_sha256": h.hexdigest()}


def cache_key(autoencoder_sha256: str, identity: dict[str, Any], pixel_shape: tuple[int, ...],
              orientations: int) -> tuple[str, dict[str, Any]]:
    """(hex key, the parts it hashes)."""
    parts = {"format": FORMAT, "autoencoder_sha256": autoencoder_sha256, "data": identity,
             "resolution": list(pixel_shape), "mode": MODE, "orientations": orientations}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest(), parts


def cache_ok(path: Path, shape: tuple[int, ...]) -> bool:
    """``path`` opens as a float32 .npy of exactly ``shape`` (a truncated file does not)."""
    try:
        array = np.load(path, mmap_mode="r")
        return array.dtype == np.float32 and array.shape == tuple(shape)
    except (OSError, ValueError):
        return False


def build_cache(path: Path, data_map: LatentMap, inner: DataSource, orientations: int,
                latent_shape: tuple[int, ...], parts: dict[str, Any]) -> None:
    """Encode ``inner`` (and its mirror images when ``orientations`` is 2) into ``path`` unless it holds them."""
    n = len(inner)
    shape = (orientations * n, *latent_shape)
    if cache_ok(path, shape):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    try:
        with open(path.with_name(path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if cache_ok(path, shape):  # another process wrote it while we waited
                return
            data_map.autoencoder.to(device)
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
            for lo in tqdm(range(0, n, ENCODE_BATCH), desc=f"encoding {inner.name} to latents", leave=False):
                hi = min(n, lo + ENCODE_BATCH)
                raw = inner.raw[lo:hi] if inner.raw is not None else torch.stack(
                    [torch.as_tensor(inner[i][0]) for i in range(lo, hi)])
                for k in range(orientations):
                    out[k * n + lo: k * n + hi] = data_map.encode(raw.flip(-1) if k else raw).cpu().numpy()
            out.flush()
            del out
            os.replace(tmp, path)
            path.with_suffix(".json").write_text(json.dumps({**parts, "shape": list(shape)}, indent=1, default=str))
    except OSError as err:
        raise OSError(f"cannot write the latent cache {path} ({err}); point data.transform.cache_dir at a writable "
                      f"folder with {np.prod(shape) * 4 / 1e9:.2f} GB free") from err
    finally:
        tmp.unlink(missing_ok=True)


class MissingAutoencoderError(MissingDataError):
    """``data.transform.autoencoder`` does not exist. ``assumed_shape`` (the recipe's ``latent_shape``, or None) and
    ``num_classes`` let a dry build report the networks without the weights."""

    def __init__(self, message: str, assumed_shape: tuple[int, ...] | None, num_classes: int) -> None:
        super().__init__(message)
        self.assumed_shape, self.num_classes = assumed_shape, num_classes


class LatentSource(DataSource):
    """The pixel source ``inner`` as cached latents: ``data_shape`` = the latent shape [c, H/f, W/f].

    ``latent_shape`` (optional): the shape the recipe expects, checked against the autoencoder; a dry build
    without the autoencoder's weights reports the networks for it. A shape-only stand-in ``inner`` (a bare
    DataSource: a dry build whose data files are missing) gets no cache.
    """

    def __init__(self, inner: DataSource, autoencoder: str | None = None, scale: float | None = None,
                 cache_dir: str | os.PathLike | None = None, latent_shape: list[int] | None = None) -> None:
        if autoencoder is None:
            raise ValueError(f"{KEY} is required: the diffusers autoencoder folder (or .safetensors file) whose "
                             f"latents the networks train on")
        if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
            raise ValueError(f"data.transform.cache_dir must be a path, got {cache_dir!r}")
        if latent_shape is not None and (not isinstance(latent_shape, (list, tuple)) or len(latent_shape) != 3
                                         or not all(isinstance(d, int) and d > 0 for d in latent_shape)):
            raise ValueError(f"data.transform.latent_shape must be [channels, height, width], got {latent_shape!r}")
        expected = None if latent_shape is None else tuple(latent_shape)
        if isinstance(autoencoder, (str, os.PathLike)) and not Path(autoencoder).expanduser().exists():
            raise MissingAutoencoderError(
                f"{KEY} = {str(autoencoder)!r} does not exist; point it at a diffusers autoencoder folder "
                f"(config.json + safetensors), e.g. RUN/autoencoder of python -m gdiff.autoencoders.train, or a "
                f".safetensors file (docs/latent.md says where to get the papers' autoencoders)", expected,
                inner.num_classes)
        self.data_map = LatentMap(inner.data_map, autoencoder, scale)
        self.data_shape = self.data_map.autoencoder.latent_shape(tuple(inner.data_shape))
        if expected is not None and expected != self.data_shape:
            raise ValueError(f"data.transform.latent_shape is {list(expected)}, but the autoencoder at "
                             f"{self.data_map.autoencoder.source} gives {list(self.data_shape)} latents")
        self.inner, self.orientations = inner, 2 if inner.hflip else 1
        self.num_classes, self.in_memory, self.name = inner.num_classes, inner.in_memory, f"{inner.name}+latent"
        if type(inner) is DataSource:  # a shape-only stand-in: nothing to encode
            self.in_memory, self.cache_file, self._map = False, None, None
            return
        key, parts = cache_key(self.data_map.sha256, data_identity(inner), tuple(inner.data_shape), self.orientations)
        root = default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
        self.cache_file = root / f"{inner.name}-{key[:24]}.latents.npy"
        build_cache(self.cache_file, self.data_map, inner, self.orientations, self.data_shape, parts)
        self.labels = None if inner.labels is None else inner.labels.repeat(self.orientations)
        self.raw = torch.from_numpy(np.load(self.cache_file)) if self.in_memory else None
        self._map: np.ndarray | None = None

    def __len__(self) -> int:
        return self.orientations * len(self.inner)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        if self.raw is not None:
            return super().__getitem__(index)
        if self._map is None:  # opened lazily in each process (DataLoader workers included)
            self._map = np.load(self.cache_file, mmap_mode="r")
        return torch.from_numpy(np.array(self._map[index])), -1 if self.labels is None else int(self.labels[index])

    def __getstate__(self) -> dict[str, Any]:
        """Workers get the path, not the map."""
        return {**self.__dict__, "_map": None}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "pixel_shape": list(self.inner.data_shape), "cache": str(self.cache_file),
                "orientations": self.orientations, "autoencoder": self.data_map.autoencoder.source}
