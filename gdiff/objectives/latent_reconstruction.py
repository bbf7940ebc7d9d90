"""LDDGAN's latent reconstruction term (Trinh et al., 2024) and the LDDGAN objective (G step only).

    loss_k = w_k * mean |x0' - x0|,      w_k = 1 - sigmoid(linspace(-6, 6, n + 1))[min(k, n)]
                                              = 1 / (1 + exp(-6 + 12 min(k, n) / n))

x0 is the real latent, x0' = G's x0 prediction for the pair's x_t, k the training step and n = ``decay_steps``
(LDDGAN counts epochs; gdiff counts steps). The weight falls from 0.9975 at step 0 through 1/2 at n/2 to 0.0025
at n and stays there: early on the L1 pulls x0' towards the data, later the adversarial loss alone shapes it.
``decay_steps: null`` keeps w = 1 (LDDGAN without ``--sigmoid_learning``). The logged part is the weighted L1.
"""

from __future__ import annotations

import math

from torch import Tensor

from gdiff.objectives.adversarial import NonSaturatingGAN
from gdiff.objectives.base import Objective, StepData, Term
from gdiff.objectives.r1 import R1Penalty

GAMMA = 6.0  # the end points of LDDGAN's linspace


def decay_weight(step: int, decay_steps: int | None) -> float:
    """w_k of the module docstring (1 when ``decay_steps`` is None)."""
    if decay_steps is None:
        return 1.0
    beta = -GAMMA + 2 * GAMMA * min(step, decay_steps) / decay_steps
    return 1.0 / (1.0 + math.exp(beta))


class LatentReconstruction(Term):
    name = "latent_rec"

    def __init__(self, weight: float = 1.0, decay_steps: int | None = None) -> None:
        if decay_steps is not None and (isinstance(decay_steps, bool) or not isinstance(decay_steps, int)
                                        or decay_steps < 1):
            raise ValueError(f"latent reconstruction decay_steps must be null or an integer >= 1 (LDDGAN: the "
                             f"training length, train.max_steps), got {decay_steps!r}")
        super().__init__(weight, d_weight=0.0)
        self.decay_steps = decay_steps

    def generator_loss(self, data: StepData) -> dict[str, Tensor]:
        if data.fake_x0 is None:
            raise ValueError("the latent reconstruction term compares G's x0 prediction with x0, but "
                             "generator.parameterization x_prev predicts no x0: use x0 or eps")
        l1 = (data.fake_x0 - data.pair.x0).abs().mean()
        return {"latent_rec": decay_weight(data.step, self.decay_steps) * l1}

    def __repr__(self) -> str:
        return f"LatentReconstruction(weight={self.weight}, decay_steps={self.decay_steps})"


def lddgan(decay_steps: int | None = None, reconstruction_weight: float = 1.0, r1_gamma: float = 0.02,
           lazy_reg: int = 15, adversarial_weight: float = 1.0, r1_batch_fraction: float = 1.0) -> Objective:
    """LDDGAN's loss: DDGAN's (pairwise non-saturating GAN + lazy R1) plus the decaying latent L1 above. The
    latent space itself is the data transform (``data.transform: {type: latent, ...}``)."""
    return Objective([NonSaturatingGAN(pairwise=True, weight=adversarial_weight),
                      R1Penalty(r1_gamma, lazy_reg, r1_batch_fraction),
                      LatentReconstruction(reconstruction_weight, decay_steps)], name="lddgan")
