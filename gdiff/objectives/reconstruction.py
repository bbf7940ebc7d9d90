"""Reconstruction of x0 by the generator (G step only): the diffusion loss that UFOGen adds to the adversarial
loss, and WaveDiff's reconstruction term.

    ``norm="l2"``:                        mean (x0' - x0)^2          (WaveDiff uses the l1 form)
    ``norm="l1"``:                        mean |x0' - x0|
    ``norm="l2", weighting="snr"``:       mean SNR(t) (x0' - x0)^2 = mean (eps' - eps)^2      (UFOGen)

with SNR(t) = abar_t / (1 - abar_t) and eps' = (x_t - sqrt(abar_t) x0') / sqrt(1 - abar_t) the noise that x0'
implies for the pair's x_t: the ``snr`` form is the usual epsilon-prediction diffusion loss (what the UFOGen
authors' script adds). It vanishes at pure noise (SNR(1) = 0), where the unweighted form pulls x0' towards the
data mean E[x0] and so blurs one-step samples (measured in docs/variants.md).

x0' is G's x0 prediction for the pair's x_t (so ``parameterization: x_prev``, which has none, cannot use it).
It needs no discriminator.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gdiff.objectives.base import StepData, Term

NORMS = ("l2", "l1")
WEIGHTINGS = ("none", "snr")


class Reconstruction(Term):
    name = "rec"

    def __init__(self, weight: float = 1.0, norm: str = "l2", weighting: str = "none") -> None:
        if norm not in NORMS:
            raise ValueError(f"reconstruction norm must be one of {NORMS}, got {norm!r}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"reconstruction weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        if weighting == "snr" and norm != "l2":
            raise ValueError("reconstruction weighting snr is the epsilon-space squared error: it needs norm l2")
        super().__init__(weight, d_weight=0.0)
        self.norm, self.weighting = norm, weighting

    @property
    def scalar_only(self) -> str | None:
        return "its snr weighting reads alpha_bar(t)" if self.weighting == "snr" else None

    def generator_loss(self, data: StepData) -> dict[str, Tensor]:
        if data.fake_x0 is None:
            raise ValueError("the reconstruction term compares G's x0 prediction with x0, but "
                             "generator.parameterization x_prev predicts no x0: use x0 or eps")
        err = data.fake_x0 - data.pair.x0
        err = err.square() if self.norm == "l2" else err.abs()
        if self.weighting == "snr":
            log_abar = data.schedule.log_alpha_bar(data.pair.t)
            snr = torch.exp(log_abar) / -torch.expm1(log_abar)
            err = err * snr.to(err.dtype).reshape(-1, *([1] * (err.ndim - 1)))
        return {"rec": err.mean()}

    def __repr__(self) -> str:
        return f"Reconstruction(weight={self.weight}, norm={self.norm!r}, weighting={self.weighting!r})"
