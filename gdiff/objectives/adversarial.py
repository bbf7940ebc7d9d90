"""Non-saturating adversarial loss, on pairs (DDGAN) or on the marginal x_s alone (SIDDM).

D step:  softplus(-D(x_s)) + softplus(D(sg(x_s')))        G step:  softplus(-D(x_s'))
(means over the batch). With ``pairwise=True`` D also sees x_t: D(x_s, t, x_t).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from gdiff.objectives.base import StepData, Term


class NonSaturatingGAN(Term):
    name = "adv"
    d_real_heads = frozenset()
    d_fake_heads = frozenset()
    g_fake_heads = frozenset()

    def __init__(self, pairwise: bool, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.pairwise = bool(pairwise)

    def discriminator_loss(self, data: StepData) -> dict[str, Tensor]:
        return {"adv_real": F.softplus(-data.real["logits"]).mean(),
                "adv_fake": F.softplus(data.fake["logits"]).mean()}

    def generator_loss(self, data: StepData) -> dict[str, Tensor]:
        return {"adv": F.softplus(-data.fake["logits"]).mean()}

    def __repr__(self) -> str:
        return f"NonSaturatingGAN(pairwise={self.pairwise}, weight={self.weight})"
