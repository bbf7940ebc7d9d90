"""R1 gradient penalty on real inputs, applied lazily every ``every`` D steps, optionally on a sub-batch.

    R1 = (gamma / 2) E_x || grad_{x_s} D(x_s, t, x_t) ||^2

The gradient is taken w.r.t. the x_s input only (not x_t). As in DDGAN, the lazy penalty is not rescaled by
``every``. With ``batch_fraction`` 1 it shares the real pass of the adversarial term (one D pass, whose input
then requires grad). With ``batch_fraction`` f < 1 the objective runs D once more on the first ceil(f B) real
samples (rounded up to whole minibatch-stddev groups; if that is all B, the shared pass is used instead) and
only that pass is differentiated twice, as
StyleGAN2 shrinks the batch of its path-length regulariser: the estimate is the mean over a uniformly random
subset of exchangeable samples, so its value and its gradient w.r.t. D's parameters keep their expectation
(the variance grows by about 1/f), while the double backward costs about f of the full batch's.
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

    def __init__(self, gamma: float, every: int = 1, batch_fraction: float = 1.0) -> None:
        if gamma < 0:
            raise ValueError(f"r1_gamma must be >= 0, got {gamma}")
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"lazy_reg must be an integer >= 1, got {every!r}")
        if isinstance(batch_fraction, bool) or not isinstance(batch_fraction, (int, float)) \
                or not 0 < batch_fraction <= 1:
            raise ValueError(f"r1_batch_fraction must be a number in (0, 1], got {batch_fraction!r}")
        super().__init__(weight=0.0, d_weight=gamma / 2)
        self.gamma, self.every, self.grad_fraction = gamma, every, float(batch_fraction)

    def real_needs_grad(self, step: int) -> bool:
        return step % self.every == 0

    def discriminator_loss(self, data: StepData) -> dict[str, Tensor]:
        if not self.real_needs_grad(data.step):
            return {}
        x_real, outputs = data.grad_pass if data.grad_pass is not None else (data.pair.x_s, data.real)
        return {"r1": r1_penalty(outputs["logits"], x_real)}

    def __repr__(self) -> str:
        fraction = "" if self.grad_fraction == 1 else f", batch_fraction={self.grad_fraction}"
        return f"R1Penalty(gamma={self.gamma}, every={self.every}{fraction})"
