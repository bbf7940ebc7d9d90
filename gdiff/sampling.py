"""The reverse chain of a diffusion GAN: NFE = number of steps, a fresh latent z at every step.

x_T ~ N(0, I); for each step (s, t) from the top: x_s ~ p(x_s | x_t) by :func:`gdiff.parameterization.reverse_step`
(default: x0' = G(x_t, t, z), x_s ~ q(x_s | x_t, x0')); the last step (down to the clean level) returns the
transition's mean, i.e. adds no noise. ``steps=1`` is one network call from pure noise (one-step generation).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gdiff.diffusion import Schedule
from gdiff.parameterization import draw_latent, reverse_step

__all__ = ["draw_latent", "sample"]


@torch.no_grad()
def sample(G: nn.Module, schedule: Schedule, x_T: Tensor, labels: Tensor | None = None,
           steps: int | None = None, generator: torch.Generator | None = None) -> Tensor:
    """Run the reverse chain from x_T [B, ...] and return x_0 [B, ...] (model space).

    ``steps`` defaults to the schedule's T (only continuous-time schedules accept another value).
    ``generator`` drives the latents and the posterior noise, so a seeded generator reproduces samples.
    """
    times = schedule.sampling_times(steps).to(x_T.device)
    x = x_T
    batch = x.shape[0]
    for i in range(len(times) - 1, 0, -1):
        s, t = times[i - 1].expand(batch), times[i].expand(batch)
        _, x = reverse_step(G, schedule, x, s, t, labels, generator, mean=i == 1)
    return x
