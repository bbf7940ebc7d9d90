"""Autoencoders for latent-space diffusion GANs: diffusers ``AutoencoderKL`` / ``VQModel`` behind one adapter.

``load(path)`` opens a diffusers folder (``config.json`` + safetensors weights, as ``save_pretrained`` writes it:
gdiff's own autoencoder, ``python -m gdiff.autoencoders.train``, exports exactly that) or a single
original-format ``AutoencoderKL`` file. diffusers is an optional extra: ``pip install -e ".[latent]"``.

    encode:  z = mean of the posterior q(z | x)     (KL autoencoders; VQ: the pre-quantisation latent h)
    decode:  x = D(z)                               (VQ: D(quantise(z)))

with images x in [-1, 1] [B, C, H, W] and latents z [B, c, H / f, W / f], f = 2^(number of down blocks - 1).
"""

from gdiff.autoencoders.adapter import EXTRA_HINT, Autoencoder, load, require_diffusers

__all__ = ["EXTRA_HINT", "Autoencoder", "load", "require_diffusers"]
