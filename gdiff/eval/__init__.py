"""Evaluation of a generator during and after training: ``evaluate(sample_fn, source, cfg)``.

The Trainer hands over a sampling function (``sample_fn(num) -> samples`` in data space, on the CPU) and gets
a flat dict of metric name -> float back; which metrics apply is decided here from the data source and the
recipe's ``eval`` section, never in the Trainer.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from gdiff.data import DataSource
from gdiff.recipes import EvalConfig


def evaluate(sample_fn: Callable[[int], Tensor], source: DataSource, cfg: EvalConfig) -> dict[str, float]:
    """Metrics of ``cfg.num_samples`` samples: mixtures get the mixture metrics (Frechet, modes, ...)."""
    centres = getattr(source, "centres", None)
    if centres is None:
        return {}
    from gdiff.metrics.mixture import mixture_metrics

    return mixture_metrics(sample_fn(cfg.num_samples), source.points, centres, source.mode_std)
