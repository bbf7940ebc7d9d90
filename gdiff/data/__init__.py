"""Data sources, built from a recipe's ``data`` section by :func:`build`.

A :class:`DataSource` holds the training set in model space (affinely normalised) and maps generated
samples back to data space. Mixture data also know their modes, which the 2-D metrics use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gdiff.data.mixtures import GaussianGrid

MIXTURES = {
    # name -> GaussianGrid defaults
    "mog25": {"dim": 2, "modes_per_side": 5},
    "mixture": {},
}


@dataclass
class DataSource:
    """``x`` [N, *shape] in model space; ``labels`` [N] or None; data = x * scale + shift."""

    x: Tensor
    shift: Tensor
    scale: Tensor
    labels: Tensor | None = None
    num_classes: int = 0
    centres: Tensor | None = None  # mixture modes, data space
    mode_std: float | None = None

    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def to_data(self, x: Tensor) -> Tensor:
        return x * self.scale.to(x) + self.shift.to(x)


def build(section: Mapping[str, Any]) -> DataSource:
    """``data: {type: mog25 | mixture, normalize: true, ...GaussianGrid keywords}``."""
    if not isinstance(section, Mapping) or section.get("type") not in MIXTURES:
        raise ValueError(f"data.type must be one of {sorted(MIXTURES)}, got "
                         f"{section.get('type') if isinstance(section, Mapping) else section!r}")
    kwargs = {**MIXTURES[section["type"]], **{k: v for k, v in section.items() if k not in ("type", "normalize")}}
    try:
        grid = GaussianGrid(**kwargs)
    except TypeError as err:
        raise ValueError(f"data ({section['type']}): {err}") from err
    points = grid.points
    if section.get("normalize", True):
        shift, scale = points.mean(0), points.std(0)
    else:
        shift, scale = torch.zeros(points.shape[1]), torch.ones(points.shape[1])
    return DataSource((points - shift) / scale, shift, scale, centres=grid.centres, mode_std=grid.std)
