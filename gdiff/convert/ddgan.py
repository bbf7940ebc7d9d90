"""DDGAN (NVlabs/denoising-diffusion-gan): NCSN++ on images in [-1, 1], channels in RGB order."""

from __future__ import annotations

from gdiff.convert.family import PIXELS, Family

FAMILY = Family(name="ddgan", transform=None, model_shape=lambda shape: shape, data_map=PIXELS)
