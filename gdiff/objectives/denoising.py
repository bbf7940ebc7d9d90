"""The U-Net discriminator's denoising regulariser (SIDDM): on REAL x_s only,

    D step: mean (D_dec(x_s, t) - x0)^2

through the discriminator's ``denoised`` head. It needs no x_t, so it serves DDGAN and SIDDM alike. In phase
space (CLD) the head has the shape of the state x_s = (x, v) and its x part (``process.data``) is compared.
"""

from __future__ import annotations

from torch import Tensor

from gdiff.objectives.base import StepData, Term


class DenoisingRegularizer(Term):
    name = "denoise"
    d_real_heads = frozenset({"denoised"})

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__(weight=0.0, d_weight=weight)

    def discriminator_loss(self, data: StepData) -> dict[str, Tensor]:
        return {"denoise": (data.schedule.data(data.real["denoised"]) - data.pair.x0).square().mean()}

    def __repr__(self) -> str:
        return f"DenoisingRegularizer(weight={self.d_weight})"
