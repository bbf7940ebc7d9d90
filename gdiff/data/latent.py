"""The latent data map: model space is an autoencoder's latent space, divided by ``scale`` (LDDGAN, LSGM).

    encode   z = E(inner.to_model(raw))              the posterior mean (gdiff/autoencoders), run once by the cache
    model    x = z / scale                           [B, c, H/f, W/f]
    data     inner.to_data(D(scale * x))             [B, C, H, W]: decoded pixels

The raw examples of a latent source are the cached latents z (gdiff/data/latent_source.py), so ``to_model`` only
divides; ``encode`` is what the cache runs on the pixel source. ``scale`` defaults to 1 / the autoencoder's
``scaling_factor`` (diffusers' convention: x = z * scaling_factor). ``config()`` names the autoencoder's path
and the sha256 of its weights; ``bundle(folder)`` copies the autoencoder into an exported generator's folder, so
the folder decodes to pixels with exactly those weights wherever it is moved.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gdiff.autoencoders import Autoencoder, load

DECODE_BATCH = 64  # images per decoder call (the decoder's activations at 256 px are large)
BUNDLED, DIGEST_FILE = "autoencoder", "gdiff-sha256.txt"  # an exported generator's copy of its autoencoder


class LatentMap:
    """``inner`` (a pixel map) seen through ``autoencoder`` (a path or a loaded :class:`Autoencoder`)."""

    def __init__(self, inner: Any, autoencoder: str | Autoencoder, scale: float | None = None,
                 sha256: str | None = None) -> None:
        self.autoencoder = autoencoder if isinstance(autoencoder, Autoencoder) else load(autoencoder)
        self.inner = inner
        if scale is None:
            scale = 1 / float(self.autoencoder.module.config.get("scaling_factor") or 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"data.transform.scale must be a finite number > 0 (model x = latent / scale), "
                             f"got {scale!r}")
        self.scale = float(scale)
        self.sha256 = self.autoencoder.digest()
        if sha256 is not None and sha256 != self.sha256:
            raise ValueError(f"data map latent: the autoencoder at {self.autoencoder.source} has weights sha256 "
                             f"{self.sha256[:16]}..., not the {sha256[:16]}... this generator was trained with; "
                             f"restore those weights")

    @torch.no_grad()
    def encode(self, raw: Tensor) -> Tensor:
        """Raw pixel batch [B, C, H, W] -> latents z [B, c, H/f, W/f] (float32, on the autoencoder's device)."""
        device = next(self.autoencoder.parameters()).device
        return self.autoencoder.encode(self.inner.to_model(raw.to(device)))

    def to_model(self, raw: Tensor) -> Tensor:
        return raw.float() / self.scale

    @torch.no_grad()
    def to_data(self, x: Tensor) -> Tensor:
        self.autoencoder.to(x.device)
        z = x.float() * self.scale
        return torch.cat([self.inner.to_data(self.autoencoder.decode(chunk)) for chunk in z.split(DECODE_BATCH)])

    def config(self) -> dict[str, Any]:
        return {"type": "latent", "autoencoder": self.autoencoder.source, "scale": self.scale,
                "sha256": self.sha256, "inner": self.inner.config()}

    def bundle(self, folder: Path) -> dict[str, Any]:
        """Copy the autoencoder into ``folder/autoencoder`` (diffusers' save_pretrained, safetensors; skipped
        when a copy of the same weights is there) and name it relative to ``folder``."""
        target = Path(folder) / BUNDLED
        stamp = target / DIGEST_FILE
        if not (stamp.is_file() and stamp.read_text().strip() == self.sha256):
            staged = Path(folder) / f".tmp-{os.getpid()}-{BUNDLED}"
            shutil.rmtree(staged, ignore_errors=True)
            self.autoencoder.module.save_pretrained(staged, safe_serialization=True)
            (staged / DIGEST_FILE).write_text(self.sha256 + "\n")
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staged, target)
        return {**self.config(), "autoencoder": BUNDLED, "inner": self.inner.bundle(folder)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], root: Path | None = None, inner: Any = None) -> LatentMap:
        """The map of a config (``inner``: its pixel map, rebuilt by gdiff.data.maps.from_config); a relative
        autoencoder path is read from ``root``, the folder of an exported generator."""
        missing = [k for k in ("autoencoder", "scale") if k not in config]
        if missing:
            raise ValueError(f"data map latent: missing keys {missing} in {dict(config)}")
        path = Path(config["autoencoder"])
        if root is not None and not path.is_absolute():
            path = Path(root) / path
        return cls(inner, str(path), config["scale"], config.get("sha256"))
