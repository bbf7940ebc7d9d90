"""Gaussian diffusion baseline: the same generator network trained as a plain denoiser (no adversary, no z).

Training step (Ho et al. 2020; ``objective: {type: gaussian}``, ``discriminator: {type: none}``):

    t ~ the schedule's training times (``time_sampling: continuous``: t ~ U(t_min, 1]),  eps ~ N(0, I),
    x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps,   out = G(x_t, t, z = [], labels)
    generator.parameterization x0:   loss = mean (out - x0)^2
    generator.parameterization eps:  loss = mean (out - eps)^2      (Ho et al.'s "simple" loss)

The generator has no latent (``generator.z_dim: 0``). Sampling takes many small steps: :func:`gdiff.sampling.sample`
over an even grid of K steps (``steps=K``, a continuous-time schedule) is DDPM's ancestral sampler,
x_s ~ q(x_s | x_t, x0'), and :func:`gdiff.sampling.ddim` the deterministic DDIM sampler; both turn an
eps-prediction into x0' = (x_t - sqrt(1 - abar_t) eps') / sqrt(abar_t) (``gdiff/parameterization.py``).
"""

from __future__ import annotations

import torch
from accelerate.utils import extract_model_from_parallel
from torch import Tensor, nn

from gdiff.objectives.base import Losses, Objective
from gdiff.parameterization import parameterization_of
from gdiff.processes import Schedule


class GaussianDiffusion(Objective):
    """The denoising loss above; no discriminator is read (``reads_discriminator`` is False)."""

    scalar_only = "the Gaussian baseline draws x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps"

    def __init__(self) -> None:
        super().__init__([], name="gaussian")

    def discriminator_loss(self, *args: object, **kwargs: object) -> Losses:
        raise RuntimeError("the Gaussian diffusion baseline trains no discriminator (trains_discriminator is False)")

    @staticmethod
    def _check(G: nn.Module) -> str:
        net = extract_model_from_parallel(G)
        if net.z_dim != 0:
            raise ValueError(f"objective gaussian trains a denoiser without a latent; set generator.z_dim: 0 "
                             f"(got z_dim {net.z_dim})")
        param = parameterization_of(net)
        if param.predicts not in ("x0", "eps") or param.transition != "posterior":
            raise ValueError(f"objective gaussian trains x0 or eps prediction with the posterior transition; got "
                             f"generator.parameterization {param.predicts}, generator.transition {param.transition}")
        return param.predicts

    def generator_loss(self, G: nn.Module, D: nn.Module | None, schedule: Schedule, x0: Tensor,
                       labels: Tensor | None = None, step: int = 0) -> Losses:
        """Mean squared error of G's x0- or eps-prediction at t drawn from the schedule; D is ignored."""
        predicts = self._check(G)
        schedule = schedule.unchecked()  # its own draws of t: no value checks, no host synchronisation
        _, t = schedule.sample_times(x0.shape[0], device=x0.device)
        noise = torch.randn_like(x0)
        x_t = schedule.q_sample(x0, t, noise)
        out = G(x_t, t.to(x0.dtype), x0.new_zeros(x0.shape[0], 0), labels)
        loss = (out - (x0 if predicts == "x0" else noise)).square().mean()
        return Losses(loss, {"g/denoise": loss.detach(), "g/total": loss.detach()})

    def __repr__(self) -> str:
        return "GaussianDiffusion()"
