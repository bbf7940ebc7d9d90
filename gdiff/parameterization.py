"""One reverse step x_t -> x_s of a diffusion GAN: what the generator's output means and how x_s is drawn.

This is the one home of the reverse transition: the objectives build their fake x_s' with
:func:`reverse_step` and the sampler runs the chain with it, so both always agree. Recipe keys of the
``generator`` section (read by :func:`gdiff.nets.build`, stored as ``G.parameterization``):

``parameterization`` (what G(x_t, t, z) predicts; DDGAN Table 4):
    x0       x0' = out                                                    (DDGAN, SIDDM; the default)
    eps      x0' = (x_t - sqrt(1 - abar_t) out) / sqrt(abar_t)            (needs abar_t >= 1e-6: vp schedule)
    x_prev   x_s' = out: no x0 prediction and no posterior draw
``transition`` (how x_s' follows from x0', for x0 and eps):
    posterior   x_s' ~ q(x_s | x_t, x0') = N(c0 x0' + ct x_t, var)         (DDGAN, SIDDM; the default)
    forward     x_s' ~ q(x_s | x0')      = N(sqrt(abar_s) x0', 1 - abar_s) (UFOGen: x_t enters only through G)

The sampler's last step (down to the clean level) returns the transition's mean instead of a draw.

The posterior is the forward process's own (``process.posterior_sample``, gdiff/processes), so the same code
runs in phase space (CLD: G reads the state u_t = (x_t, v_t) and predicts x0; u_s' ~ q(u_s | u_t, x0')). eps,
x_prev and the forward transition need a scalar alpha_bar: :meth:`Parameterization.check` refuses them on CLD.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from accelerate.utils import extract_model_from_parallel
from torch import Tensor, nn

from gdiff.processes import ForwardProcess, Schedule

PREDICTS = ("x0", "eps", "x_prev")
TRANSITIONS = ("posterior", "forward")
MIN_ALPHA_BAR = 1e-6  # eps -> x0 divides by sqrt(abar_t): below this, float32 noise is amplified > 1000x


def draw_latent(G: nn.Module, batch: int, device: torch.device, dtype: torch.dtype = torch.float32,
                generator: torch.Generator | None = None) -> Tensor:
    """z ~ N(0, I) of shape [batch, G.z_dim] (G may be wrapped by DDP or torch.compile; z_dim 0: [batch, 0])."""
    z_dim = extract_model_from_parallel(G).z_dim
    return torch.randn(batch, z_dim, device=device, dtype=dtype, generator=generator)


@dataclass(frozen=True)
class Parameterization:
    """``predicts`` in :data:`PREDICTS` and ``transition`` in :data:`TRANSITIONS` (see the module docstring)."""

    predicts: str = "x0"
    transition: str = "posterior"

    def __post_init__(self) -> None:
        if self.predicts not in PREDICTS:
            raise ValueError(f"generator.parameterization must be one of {PREDICTS}, got {self.predicts!r}")
        if self.transition not in TRANSITIONS:
            raise ValueError(f"generator.transition must be one of {TRANSITIONS}, got {self.transition!r}")
        if self.predicts == "x_prev" and self.transition != "posterior":
            raise ValueError("generator.parameterization x_prev predicts x_{t-1} itself: it has no transition "
                             f"to choose; leave generator.transition at posterior, got {self.transition!r}")

    def check(self, schedule: ForwardProcess) -> None:
        """Raise a ValueError if this parameterisation cannot run on ``schedule`` (called once, at build time).

        A phase-space process takes x0 prediction and the posterior only. eps -> x0 divides by sqrt(alpha_bar(t));
        alpha_bar falls with t, so alpha_bar(1) bounds every time.
        """
        if not schedule.scalar:
            if self.predicts != "x0" or self.transition != "posterior":
                raise ValueError(f"diffusion.process {schedule.name} has no scalar alpha_bar: its generator reads the "
                                 f"state u_t and predicts x0, drawn into u_s by the posterior; got "
                                 f"generator.parameterization {self.predicts}, generator.transition "
                                 f"{self.transition}: use parameterization x0 and transition posterior")
            return
        if self.predicts != "eps":
            return
        lowest = float(schedule.alpha_bar(torch.ones((), dtype=torch.float64)))
        if lowest < MIN_ALPHA_BAR:
            raise ValueError(f"generator.parameterization eps needs alpha_bar(t) >= {MIN_ALPHA_BAR} at every "
                             f"time (x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar)); the {schedule.name} "
                             f"schedule reaches alpha_bar = {lowest:.3g}: use diffusion.schedule vp "
                             f"(alpha_bar(1) = 4.3e-5)")

    def x0(self, out: Tensor, x_t: Tensor, t: Tensor, schedule: Schedule) -> Tensor | None:
        """The x0 prediction [B, ...] implied by G's output (None for ``x_prev``); t: float times [B].

        Valid after :meth:`check` against the same schedule (the step itself checks nothing)."""
        if self.predicts == "x0":
            return out
        if self.predicts == "x_prev":
            return None
        log_abar = schedule.log_alpha_bar(t.to(torch.float64))
        shape = (-1,) + (1,) * (out.ndim - 1)
        inv_sqrt_abar = torch.exp(-0.5 * log_abar).to(out.dtype).reshape(shape)
        sigma = torch.sqrt(-torch.expm1(log_abar)).to(out.dtype).reshape(shape)
        return (x_t - sigma * out) * inv_sqrt_abar

    def transition_moments(self, x0: Tensor, x_t: Tensor, s: Tensor, t: Tensor,
                           schedule: Schedule) -> tuple[Tensor, Tensor]:
        """(mean [B, ...], variance [B, 1, ..., 1]) of x_s given x0' (and x_t for ``posterior``), on a scalar
        schedule."""
        if self.transition == "posterior":
            return schedule.posterior(x0, x_t, s, t)
        log_abar = schedule.log_alpha_bar(s.to(torch.float64))
        shape = (-1,) + (1,) * (x0.ndim - 1)
        mean = torch.exp(0.5 * log_abar).to(x0.dtype).reshape(shape) * x0
        return mean, (-torch.expm1(log_abar)).to(x0.dtype).reshape(shape)


DEFAULT = Parameterization()


def parameterization_of(G: nn.Module) -> Parameterization:
    """``G.parameterization`` (set by :func:`gdiff.nets.build`), or the default x0 + posterior."""
    return getattr(extract_model_from_parallel(G), "parameterization", DEFAULT)


def reverse_step(G: nn.Module, schedule: ForwardProcess, x_t: Tensor, s: Tensor, t: Tensor,
                 labels: Tensor | None = None, generator: torch.Generator | None = None,
                 mean: bool = False) -> tuple[Tensor | None, Tensor]:
    """One network call: z ~ N(0, I), out = G(x_t, t, z, labels) -> (x0' or None, x_s').

    x_t [B, *state_shape]; s < t float times [B]. ``mean=True`` returns the transition's mean as x_s' (the sampler's
    last step). Differentiable in G's parameters (the noise is reparameterised). ``generator`` drives z and the
    noise.
    """
    param = parameterization_of(G)
    batch = x_t.shape[0]
    z = draw_latent(G, batch, x_t.device, x_t.dtype, generator)
    out = G(x_t, t.to(x_t.dtype), z, labels)
    if param.predicts == "x_prev":
        return None, out
    x0 = param.x0(out, x_t, t, schedule)
    if param.transition == "forward":
        mu, var = param.transition_moments(x0, x_t, s, t, schedule)
        return x0, mu if mean else mu + var.sqrt() * _noise(x_t, generator)
    if mean:
        return x0, schedule.posterior_mean(x0, x_t, s, t)
    return x0, schedule.posterior_sample(x0, x_t, s, t, _noise(x_t, generator))


def _noise(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
