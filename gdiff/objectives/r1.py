"""R1 gradient penalty on real inputs, applied lazily every ``every`` D steps.

    R1 = (gamma / 2) E_x || grad_{x_s} D(x_s, t, x_t) ||^2

The gradient is taken w.r.t. the x_s input only (not x_t). As in DDGAN, the lazy penalty is not rescaled by
``every``. It shares the real pass of the adversarial term, so the D step keeps one backward per network.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gdiff.objectives.base import StepData, Term


def r1_penalty(logits: Tensor, x_real: Tensor) -> Tensor:
    """E ||d sum(logits) / d x_real||^2 per sample, [B] logits of x_real [B, ...]; keeps the graph."""
    (grad,) = torch.autograd.grad(logits.sum(), x_real, create_graph=True)
    grad = grad.to(torch.promote_types(grad.dtype, torch.float32))  # accumulate in >= float32 under AMP
    return grad.square().flatten(1).sum(1).mean()


class R1Penalty(Term):
    name = "r1"
    d_real_heads = frozenset()

    def __init__(self, gamma: float, every: int = 1) -> None:
        if gamma < 0:
            raise ValueError(f"r1_gamma must be >= 0, got {gamma}")
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"lazy_reg must be an integer >= 1, got {every!r}")
        super().__init__(weight=0.0, d_weight=gamma / 2)
        self.gamma, self.every = gamma, every

    def real_needs_grad(self, step: int) -> bool:
        return step % self.every == 0

    def discriminator_loss(self, data: StepData) -> dict[str, Tensor]:
        if not self.real_needs_grad(data.step):
            return {}
        return {"r1": r1_penalty(data.real["logits"], data.pair.x_s)}

    def __repr__(self) -> str:
        return f"R1Penalty(gamma={self.gamma}, every={self.every})"
