"""What the Trainer logs: running means of the loss parts, kept on the device between log steps.

Reading a tensor's value forces the host to wait for the device; the meter adds the parts of every step on the
device and reads them once per log step (one synchronisation per ``train.log_every`` steps).
"""

from __future__ import annotations

from typing import Any

import torch


class LossMeter:
    """Running sums of loss parts on the device; read (one synchronisation) only when logging."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, parts: dict[str, torch.Tensor]) -> None:
        for key, value in parts.items():
            value = value.detach().float()
            self.sums[key] = self.sums[key] + value if key in self.sums else value
            self.counts[key] = self.counts.get(key, 0) + 1

    def means(self) -> dict[str, float]:
        """Means since the last call (then reset)."""
        out = {k: float(v) / self.counts[k] for k, v in self.sums.items()}
        self.sums, self.counts = {}, {}
        return out


def flat_scalars(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a recipe for tracker hyper-parameters (lists become strings)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat_scalars(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out
