"""One adapter over diffusers' ``AutoencoderKL`` and ``VQModel``: loading without unpickling, encode, decode,
the latent shape and a digest of the weights (what the latent cache is keyed by).

Loading (``path`` is what ``data.transform.autoencoder`` names):

* a folder with ``config.json`` (``_class_name`` AutoencoderKL or VQModel) and ``*.safetensors`` weights:
  ``from_pretrained(folder, local_files_only=True, use_safetensors=True)`` (a folder with only pickled
  ``.bin`` weights is refused);
* a single ``.safetensors`` file in the original (LDM / Stable Diffusion) layout: ``AutoencoderKL.from_single_file``
  (diffusers infers the architecture; a file of another architecture needs converting to a folder first).
  Pickled single files (``.ckpt``, ``.pt``, ``.pth``, ``.bin``) are refused: convert them once with
  ``torch.load(path, weights_only=True)`` and ``safetensors.torch.save_file``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

EXTRA_HINT = 'pip install -e ".[latent]"'
KEY = "data.transform.autoencoder"
CLASSES = ("AutoencoderKL", "VQModel")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")


def require_diffusers(key: str = KEY) -> Any:
    """The diffusers module, or a ValueError naming ``key`` and the extra that installs it."""
    try:
        import diffusers
    except ImportError as err:
        raise ValueError(f"{key} needs the diffusers package, which is not installed ({err}); install the "
                         f"latent extra: {EXTRA_HINT}") from err
    return diffusers


class Autoencoder(nn.Module):
    """A loaded diffusers autoencoder; ``module`` is the diffusers model, ``source`` where it came from."""

    def __init__(self, module: nn.Module, source: str = "") -> None:
        super().__init__()
        self.module, self.source = module, source
        self.kind = type(module).__name__
        if self.kind not in CLASSES:
            raise ValueError(f"{KEY}: {source} holds a {self.kind}; expected one of {list(CLASSES)}")
        self.module.eval().requires_grad_(False)

    @property
    def latent_channels(self) -> int:
        return int(self.module.config.latent_channels)

    @property
    def downsampling(self) -> int:
        """f: each spatial side of the latent is the image's divided by f."""
        return 2 ** (len(self.module.config.block_out_channels) - 1)

    def latent_shape(self, image_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """[c, H / f, W / f] of the latent of one image [C, H, W]; a ValueError unless f divides H and W and the
        autoencoder takes C channels."""
        config, f = self.module.config, self.downsampling
        if len(image_shape) != 3 or image_shape[1] % f or image_shape[2] % f:
            raise ValueError(f"{KEY}: the autoencoder downsamples by {f}; it needs images [C, H, W] with H and W "
                             f"divisible by {f}, got {list(image_shape)}")
        if int(config.in_channels) != image_shape[0]:
            raise ValueError(f"{KEY}: the autoencoder takes {config.in_channels}-channel images; the data has "
                             f"{image_shape[0]} channels ({list(image_shape)})")
        return self.latent_channels, image_shape[1] // f, image_shape[2] // f

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Images [B, C, H, W] in [-1, 1] -> latents [B, c, H/f, W/f]: the posterior mean (KL) or the
        pre-quantisation latent (VQ), float32."""
        x = x.to(self.module.dtype)
        if self.kind == "VQModel":
            return self.module.encode(x).latents.float()
        return self.module.encode(x).latent_dist.mean.float()

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """Latents [B, c, h, w] -> images [B, C, f h, f w] (about [-1, 1]), float32."""
        return self.module.decode(z.to(self.module.dtype)).sample.float()

    def digest(self) -> str:
        """sha256 of the class, the public config and every weight (name, dtype, shape, bytes)."""
        h = hashlib.sha256(self.kind.encode())
        config = {k: v for k, v in dict(self.module.config).items() if not k.startswith("_")}
        h.update(json.dumps(config, sort_keys=True, default=str).encode())
        for name, tensor in sorted(self.module.state_dict().items()):
            t = tensor.detach().cpu().contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return h.hexdigest()


def load(path: str | os.PathLike, key: str = KEY) -> Autoencoder:
    """The autoencoder at ``path`` (see the module docstring); errors are ValueError / FileNotFoundError that
    name ``key``."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"{key} must be the path of a diffusers autoencoder folder or .safetensors file, "
                         f"got {path!r}")
    where = Path(path).expanduser()
    if not where.exists():
        raise FileNotFoundError(f"{key} = {str(where)!r} does not exist; point it at a diffusers autoencoder "
                                f"folder (config.json + safetensors), e.g. one that python -m "
                                f"gdiff.autoencoders.train exports (RUN/autoencoder), or a .safetensors file")
    diffusers = require_diffusers(key)
    if where.is_dir():
        return Autoencoder(_from_folder(diffusers, where, key), str(where.resolve()))
    if where.suffix.lower() in PICKLE_SUFFIXES:
        raise ValueError(f"{key} = {str(where)!r} is a pickle, which gdiff never loads; convert it once to "
                         f"safetensors (torch.load(path, weights_only=True), then safetensors.torch.save_file) "
                         f"or use a diffusers folder")
    if where.suffix.lower() != ".safetensors":
        raise ValueError(f"{key} = {str(where)!r}: expected a folder or a .safetensors file")
    try:
        module = diffusers.AutoencoderKL.from_single_file(str(where))
    except Exception as err:  # diffusers raises many kinds; the message is what matters
        raise ValueError(f"{key} = {str(where)!r}: diffusers could not read it as an original-format "
                         f"AutoencoderKL ({type(err).__name__}: {err}); convert it to a diffusers folder") from err
    return Autoencoder(module, str(where.resolve()))


def _from_folder(diffusers: Any, folder: Path, key: str) -> nn.Module:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{key} = {str(folder)!r} has no config.json; a diffusers autoencoder folder holds "
                                f"config.json and diffusion_pytorch_model.safetensors (save_pretrained)")
    try:
        kind = json.loads(config_file.read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError) as err:
        raise ValueError(f"{key}: {config_file} is not a readable JSON object ({err})") from err
    if kind not in CLASSES:
        raise ValueError(f"{key}: {config_file} describes a {kind!r}; expected one of {list(CLASSES)}")
    if not any(folder.glob("*.safetensors")):
        raise FileNotFoundError(f"{key} = {str(folder)!r} holds no .safetensors weights (pickled weights are "
                                f"never loaded)")
    return getattr(diffusers, kind).from_pretrained(folder, local_files_only=True, use_safetensors=True)
