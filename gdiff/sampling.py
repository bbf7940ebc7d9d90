"""The reverse chain of a diffusion GAN: NFE = number of steps, a fresh latent z at every step.

x_T ~ the prior (``process.prior_sample``: N(0, I) for the scalar schedules, (x, v) ~ N(0, diag(I, M I)) for CLD);
for each step (s, t) from the top: x_s ~ p(x_s | x_t) by :func:`gdiff.parameterization.reverse_step` (default:
x0' = G(x_t, t, z), x_s ~ q(x_s | x_t, x0')); the last step (down to the clean level) returns the transition's
mean, i.e. adds no noise, and the chain returns its data part (``process.data``: x of the state). ``steps=1`` is
one network call from pure noise (one-step generation). The chain's times come from ``schedule.sampling_times``,
so its steps skip the schedule's value checks (``schedule.unchecked()``: no host synchronisation per step on a
GPU).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gdiff.parameterization import draw_latent, parameterization_of, reverse_step
from gdiff.processes import ForwardProcess, Schedule

__all__ = ["ddim", "draw_latent", "sample"]


@torch.no_grad()
def sample(G: nn.Module, schedule: ForwardProcess, x_T: Tensor, labels: Tensor | None = None,
           steps: int | None = None, generator: torch.Generator | None = None) -> Tensor:
    """Run the reverse chain from the state x_T [B, *state_shape] (``schedule.prior_sample``) and return x_0
    [B, *data_shape] (model space).

    ``steps`` defaults to the schedule's T (only continuous-time schedules accept another value).
    ``generator`` drives the latents and the posterior noise, so a seeded generator reproduces samples.
    """
    times = schedule.sampling_times(steps).to(x_T.device)
    schedule = schedule.unchecked()
    x = x_T
    batch = x.shape[0]
    for i in range(len(times) - 1, 0, -1):
        s, t = times[i - 1].expand(batch), times[i].expand(batch)
        _, x = reverse_step(G, schedule, x, s, t, labels, generator, mean=i == 1)
    return schedule.data(x)


def _view(coef: Tensor, x: Tensor) -> Tensor:
    """float64 [B] -> [B, 1, ..., 1] in x's dtype."""
    return coef.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


@torch.no_grad()
def ddim(G: nn.Module, schedule: Schedule, x_T: Tensor, labels: Tensor | None = None, steps: int | None = None,
         eta: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
    """DDIM (Song et al. 2021) from x_T [B, ...] to x_0 [B, ...] (model space) over the sampling grid.

    Each step (s, t) reads x0' from G (through its parameterization: x0 or eps) and
    eps' = (x_t - sqrt(abar_t) x0') / sqrt(1 - abar_t), then

        x_s = sqrt(abar_s) x0' + sqrt(1 - abar_s - sigma^2) eps' + sigma noise,
        sigma^2 = eta^2 (1 - abar_s) / (1 - abar_t) (1 - abar_t / abar_s)   (eta^2 x the posterior variance).

    eta = 0 is deterministic given the latents (none for a denoiser); eta = 1 has the moments of the
    ancestral posterior draw of :func:`sample`. The last step adds no noise. NFE = number of steps.
    """
    if eta < 0:
        raise ValueError(f"ddim: eta must be >= 0, got {eta}")
    if not schedule.scalar:
        raise ValueError(f"sampler ddim is defined through a scalar alpha_bar, which diffusion.process "
                         f"{schedule.name} does not have: use the ancestral sampler")
    param = parameterization_of(G)
    if param.predicts == "x_prev":
        raise ValueError("ddim needs an x0 (or eps) prediction; generator.parameterization x_prev gives none")
    times = schedule.sampling_times(steps).to(x_T.device)
    schedule = schedule.unchecked()
    x = x_T
    batch = x.shape[0]
    for i in range(len(times) - 1, 0, -1):
        s, t = times[i - 1].expand(batch), times[i].expand(batch)
        z = draw_latent(G, batch, x.device, x.dtype, generator)
        x0 = param.x0(G(x, t.to(x.dtype), z, labels), x, t, schedule)
        log_s, log_t = schedule.log_alpha_bar(s), schedule.log_alpha_bar(t)
        var = eta**2 * schedule.posterior_coefficients(s, t)[2] if i > 1 else torch.zeros_like(log_s)
        eps = (x - _view(torch.exp(0.5 * log_t), x) * x0) / _view(torch.sqrt(-torch.expm1(log_t)), x)
        x = _view(torch.exp(0.5 * log_s), x) * x0 + _view((-torch.expm1(log_s) - var).clamp(min=0).sqrt(), x) * eps
        if i > 1 and eta > 0:
            x = x + _view(var.sqrt(), x) * torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
    return x
