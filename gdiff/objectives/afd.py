"""SIDDM's auxiliary forward diffusion: KL(p_G(x_t | x_s) || q(x_t | x_s)) = cross-entropy - entropy.

Cross-entropy (explicit, G step only), with the forward transition q(x_t | x_s) = N(A x_s, Sigma)
(``process.transition_error``; scalar schedules: A = sqrt(a), Sigma = beta I):
    ``weighting="none"``:         mean (x_t - A x_s')^2
    ``weighting="inverse_beta"``: mean of the elementwise terms of (x_t - A x_s')^T Sigma^-1 (x_t - A x_s') / 2
                                  (scalar: mean (x_t - sqrt(a) x_s')^2 / (2 beta))
In phase space (CLD) x_t and x_s' are states (x, v) and the regression head predicts the state x_t.
Entropy (implicit, adversarial): a regression head C of the discriminator predicts x_t from x_s'.
    D step: C minimises mean (C(sg(x_s'), t) - x_t)^2        (weight ``d_weight``, default 1)
    G step: G maximises the same error with C frozen: loss = -mean (C(x_s', t) - x_t)^2
Neither term lets the discriminator see x_t: both are marginal (``pairwise = False``).
"""

from __future__ import annotations

from torch import Tensor

from gdiff.objectives.base import StepData, Term

WEIGHTINGS = ("none", "inverse_beta")


class AFDCrossEntropy(Term):
    name = "afd_ce"
    pairwise = False

    def __init__(self, weight: float = 1.0, weighting: str = "none") -> None:
        if weighting not in WEIGHTINGS:
            raise ValueError(f"afd_weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        super().__init__(weight, d_weight=0.0)
        self.weighting = weighting

    def generator_loss(self, data: StepData) -> dict[str, Tensor]:
        pair = data.pair
        err = data.schedule.transition_error(pair.x_t, data.fake_x_s, pair.s, pair.t,
                                             whiten=self.weighting == "inverse_beta")
        return {"afd_ce": err.mean()}

    def __repr__(self) -> str:
        return f"AFDCrossEntropy(weight={self.weight}, weighting={self.weighting!r})"


class AdversarialEntropy(Term):
    name = "afd_entropy"
    pairwise = False
    d_fake_heads = frozenset({"regression"})
    g_fake_heads = frozenset({"regression"})

    def __init__(self, weight: float = 1.0, fit_weight: float = 1.0) -> None:
        super().__init__(weight, d_weight=fit_weight)

    @staticmethod
    def _error(data: StepData) -> Tensor:
        return (data.fake["regression"] - data.pair.x_t).square().mean()

    def discriminator_loss(self, data: StepData) -> dict[str, Tensor]:
        return {"c_fit": self._error(data)}

    def generator_loss(self, data: StepData) -> dict[str, Tensor]:
        return {"neg_entropy": -self._error(data)}
