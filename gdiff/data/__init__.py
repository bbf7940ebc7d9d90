"""Data sources, built from a recipe's ``data`` section by :func:`build`.

``data: {type: NAME, ...keywords of the source}``; each type is one registry line below. A source is a
:class:`DataSource` (``gdiff/data/source.py``): raw examples plus the maps to and from model space. The
endless, resumable per-rank batch stream over a source is :class:`gdiff.data.stream.BatchStream`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from gdiff import sections
from gdiff.data.cifar10 import CIFAR10
from gdiff.data.digits import Digits, StackedDigits
from gdiff.data.image_folder import ImageFolder
from gdiff.data.imagenet64 import ImageNet64
from gdiff.data.mixtures import GaussianGrid
from gdiff.data.source import DataSource, MissingDataError
from gdiff.data.stacked_mnist import StackedMNIST
from gdiff.data.transformed import transformed

__all__ = ["CIFAR10", "SOURCES", "DataSource", "Digits", "GaussianGrid", "ImageFolder", "ImageNet64",
           "MissingDataError", "StackedDigits", "StackedMNIST", "build"]

# type name -> builder called with the section's other keys
SOURCES: dict[str, Callable[..., DataSource]] = {
    "mog25": functools.partial(GaussianGrid, dim=2, modes_per_side=5, name="mog25"),
    "mixture": GaussianGrid,
    "image_folder": ImageFolder,
    "cifar10": CIFAR10,
    "imagenet64": ImageNet64,
    "stacked_mnist": StackedMNIST,
    "digits": Digits,
    "stacked_digits": StackedDigits,
}


def build(section: Mapping[str, Any]) -> DataSource:
    """Build the data source of a recipe's ``data`` section; errors name the offending key.

    The keys are checked against the source's signature and annotations (:func:`gdiff.sections.call`).
    ``transform: haar`` wraps the source into Haar subband space (gdiff/data/transformed.py, WaveDiff).
    """
    kind = section.get("type") if isinstance(section, Mapping) else None
    if kind not in SOURCES:
        hint = sections.did_you_mean(kind, SOURCES)
        raise ValueError(f"data.type must be one of {sorted(SOURCES)}, got {kind!r}{hint}")
    kwargs = {k: v for k, v in section.items() if k not in ("type", "transform")}
    source = sections.call(SOURCES[kind], kwargs, "data")
    return source if section.get("transform") is None else transformed(source, section["transform"])
