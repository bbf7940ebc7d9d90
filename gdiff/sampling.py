"""The reverse chain of a diffusion GAN: NFE = number of steps, a fresh latent z at every step.

x_T ~ N(0, I); for each step (s, t) from the top: x0' = G(x_t, t, z), x_s ~ q(x_s | x_t, x0');
the last step (down to the clean level) returns the posterior mean, i.e. adds no noise.
"""

from __future__ import annotations

import torch
from accelerate.utils import extract_model_from_parallel
from torch import Tensor, nn

from gdiff.diffusion import Schedule


def draw_latent(G: nn.Module, batch: int, device: torch.device, dtype: torch.dtype = torch.float32,
                generator: torch.Generator | None = None) -> Tensor:
    """z ~ N(0, I) of shape [batch, G.z_dim] (G may be wrapped by DDP or torch.compile)."""
    z_dim = extract_model_from_parallel(G).z_dim
    return torch.randn(batch, z_dim, device=device, dtype=dtype, generator=generator)


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
        z = draw_latent(G, batch, x.device, x.dtype, generator)
        x0 = G(x, t.to(x.dtype), z, labels)
        mean, var = schedule.posterior(x0, x, s, t)
        if i > 1:
            noise = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
            x = mean + var.sqrt() * noise
        else:
            x = mean
    return x
