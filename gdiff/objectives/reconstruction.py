"""Reconstruction of x0 by the generator (G step only): the diffusion loss that UFOGen adds to the adversarial
loss, and WaveDiff's reconstruction term.

    ``norm="l2"``:  mean (x0' - x0)^2        (UFOGen: the usual x0-prediction diffusion loss)
    ``norm="l1"``:  mean |x0' - x0|          (WaveDiff)

x0' is G's x0 prediction for the pair's x_t (so ``parameterization: x_prev``, which has none, cannot use it).
It needs no discriminator.
"""

from __future__ import annotations

from torch import Tensor

from gdiff.objectives.base import StepData, Term

NORMS = ("l2", "l1")


class Reconstruction(Term):
    name = "rec"

    def __init__(self, weight: float = 1.0, norm: str = "l2") -> None:
        if norm not in NORMS:
            raise ValueError(f"reconstruction norm must be one of {NORMS}, got {norm!r}")
        super().__init__(weight, d_weight=0.0)
        self.norm = norm

    def generator_loss(self, data: StepData) -> dict[str, Tensor]:
        if data.fake_x0 is None:
            raise ValueError("the reconstruction term compares G's x0 prediction with x0, but "
                             "generator.parameterization x_prev predicts no x0: use x0 or eps")
        err = data.fake_x0 - data.pair.x0
        return {"rec": (err.square() if self.norm == "l2" else err.abs()).mean()}

    def __repr__(self) -> str:
        return f"Reconstruction(weight={self.weight}, norm={self.norm!r})"
