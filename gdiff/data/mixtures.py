"""Gaussian mixtures on a regular grid: the 25-Gaussians of the SIDDM paper and small 1-D test mixtures.

Mode centres are ``spacing * {0, ..., modes_per_side - 1}^dim``; each mode is N(centre, std^2 I) with every
coordinate clipped to +-clip around its centre (SIDDM's toy: 5 x 5 modes, spacing 5, std 1/3, clip 1,
10,000 points per mode). The fixed sample lives in memory; model space is the sample normalised to zero mean
and unit variance per coordinate (``normalize: true``) or the raw points.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from gdiff.data.maps import Affine
from gdiff.data.source import DataSource


class GaussianGrid(DataSource):
    """A fixed sample of a grid mixture: ``raw`` [modes * per_mode, dim] float32, ``centres`` [modes, dim]."""

    in_memory = True

    def __init__(self, dim: int = 2, modes_per_side: int = 5, spacing: float = 5.0, std: float = 1 / 3,
                 clip: float = 1.0, per_mode: int = 10_000, seed: int = 0, normalize: bool = True,
                 name: str = "mixture") -> None:
        for key, value in {"dim": dim, "modes_per_side": modes_per_side, "per_mode": per_mode}.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"data.{key} must be an integer >= 1, got {value!r}")
        if std <= 0 or clip <= 0 or spacing <= 0:
            raise ValueError(f"data.std, data.clip and data.spacing must be > 0; got {std}, {clip}, {spacing}")
        self.name = name
        self.mode_std = float(std)
        axis = [spacing * i for i in range(modes_per_side)]
        self.centres = torch.tensor(list(itertools.product(axis, repeat=dim)), dtype=torch.float32)
        gen = torch.Generator().manual_seed(seed)
        offsets = (torch.randn(len(self.centres), per_mode, dim, generator=gen) * std).clamp(-clip, clip)
        self.raw: Tensor = (self.centres[:, None, :] + offsets).reshape(-1, dim)
        self.data_shape = (dim,)
        if normalize:
            self.data_map = Affine(self.raw.mean(0), self.raw.std(0))
        else:
            self.data_map = Affine(torch.zeros(dim), torch.ones(dim))

    @property
    def points(self) -> Tensor:
        """The fixed sample in data space [N, dim]."""
        return self.raw
