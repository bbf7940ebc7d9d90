"""The Gaussian diffusion baseline (objective ``gaussian``) and its many-step samplers (DDPM ancestral, DDIM).

Samplers are checked with the exact denoiser of Gaussian data N(m, v): E[x0 | x_t] is known in closed form,
so DDPM and DDIM must return samples of N(m, v) up to sampling error. The objective is checked by training a
small network and comparing it to that closed form.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gdiff import nets, objectives
from gdiff.parameterization import Parameterization
from gdiff.processes import Schedule
from gdiff.sampling import ddim, sample

MEAN, VAR = 1.5, 0.25


def posterior_mean_x0(x_t: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """E[x0 | x_t] for x0 ~ N(MEAN, VAR), x_t = sqrt(abar) x0 + sqrt(1 - abar) eps."""
    a = abar.reshape(-1, *([1] * (x_t.ndim - 1))).to(x_t.dtype)
    return MEAN + VAR * a.sqrt() * (x_t - a.sqrt() * MEAN) / (a * VAR + 1 - a)


class ExactDenoiser(nn.Module):
    """The Bayes-optimal x0 (or eps) predictor of N(MEAN, VAR) data under ``schedule``; no latent."""

    z_dim = 0

    def __init__(self, schedule: Schedule, predicts: str = "x0") -> None:
        super().__init__()
        self.schedule = schedule
        self.parameterization = Parameterization(predicts)

    def forward(self, x_t, t, z, labels=None):
        abar = self.schedule.alpha_bar(t.double())
        x0 = posterior_mean_x0(x_t.double(), abar)
        if self.parameterization.predicts == "x0":
            return x0.to(x_t.dtype)
        a = abar.reshape(-1, *([1] * (x_t.ndim - 1)))
        return ((x_t.double() - a.sqrt() * x0) / (1 - a).sqrt()).to(x_t.dtype)


@pytest.mark.parametrize("sampler,eta", [("ancestral", None), ("ddim", 0.0), ("ddim", 1.0)])
def test_many_step_samplers_draw_the_data_distribution(sampler, eta):
    schedule = Schedule.vp(1000, time_sampling="continuous")
    G = ExactDenoiser(schedule)
    n = 20_000
    gen = torch.Generator().manual_seed(0)
    x_T = torch.randn(n, 1, dtype=torch.float64, generator=gen)
    if sampler == "ancestral":
        x = sample(G, schedule, x_T, steps=200, generator=gen)
    else:
        x = ddim(G, schedule, x_T, steps=200, eta=eta, generator=gen)
    se_mean, se_var = math.sqrt(VAR / n), VAR * math.sqrt(2 / n)
    assert float(x.mean()) == pytest.approx(MEAN, abs=4 * se_mean + 0.01)
    assert float(x.var()) == pytest.approx(VAR, abs=4 * se_var + 0.01)


def test_ddim_is_deterministic_and_the_same_for_eps_and_x0_prediction():
    schedule = Schedule.vp(8, time_sampling="continuous")
    x_T = torch.randn(64, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x0_pred = ddim(ExactDenoiser(schedule, "x0"), schedule, x_T, steps=50,
                   generator=torch.Generator().manual_seed(2))
    again = ddim(ExactDenoiser(schedule, "x0"), schedule, x_T, steps=50, generator=torch.Generator().manual_seed(3))
    eps_pred = ddim(ExactDenoiser(schedule, "eps"), schedule, x_T, steps=50)
    assert torch.equal(x0_pred, again)
    torch.testing.assert_close(eps_pred, x0_pred, rtol=1e-9, atol=1e-9)


def test_ddim_refuses_what_it_cannot_do():
    schedule = Schedule.vp(4, time_sampling="continuous")
    G = ExactDenoiser(schedule)
    G.parameterization = Parameterization("x_prev")
    with pytest.raises(ValueError, match="x_prev"):
        ddim(G, schedule, torch.zeros(2, 1))
    with pytest.raises(ValueError, match="eta"):
        ddim(ExactDenoiser(schedule), schedule, torch.zeros(2, 1), eta=-1)


@pytest.mark.parametrize("predicts", ["x0", "eps"])
def test_the_objective_trains_the_bayes_denoiser(predicts):
    torch.manual_seed(0)
    schedule = Schedule.vp(1000, time_sampling="continuous")
    G = nets.build({"type": "toy_generator", "width": 64, "depth": 2, "z_dim": 0, "parameterization": predicts},
                   (1,), 0, "generator")
    objective = objectives.from_config({"type": "gaussian"})
    assert not objective.reads_discriminator and not objective.trains_discriminator
    opt = torch.optim.Adam(G.parameters(), lr=3e-3)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 1500)
    for _ in range(1500):
        x0 = MEAN + math.sqrt(VAR) * torch.randn(256, 1)
        loss = objective.generator_loss(G, None, schedule, x0)
        opt.zero_grad()
        loss.total.backward()
        opt.step()
        decay.step()
    assert set(loss.parts) == {"g/denoise", "g/total"}
    exact = ExactDenoiser(schedule, predicts)
    for time in torch.tensor([0.1, 0.3, 0.5, 0.7]):
        abar = float(schedule.alpha_bar(time.double()))
        # x_t within 2 standard deviations of its marginal N(sqrt(abar) m, abar v + 1 - abar)
        x_t = (math.sqrt(abar) * MEAN + math.sqrt(abar * VAR + 1 - abar) * torch.linspace(-2, 2, 9))[:, None]
        tt = time.expand(len(x_t))
        with torch.no_grad():
            got = G(x_t, tt, torch.zeros(len(x_t), 0))
        want = exact(x_t, tt, None).float()
        assert (got - want).abs().max() < 0.1, (predicts, float(time), got.ravel(), want.ravel())


def test_objective_errors_name_the_recipe_key():
    schedule = Schedule.vp(4, time_sampling="continuous")
    objective = objectives.from_config({"type": "gaussian"})
    G = nets.build({"type": "toy_generator", "width": 8, "depth": 1, "z_dim": 2}, (1,), 0, "generator")
    with pytest.raises(ValueError, match="generator.z_dim: 0"):
        objective.generator_loss(G, None, schedule, torch.zeros(4, 1))
    with pytest.raises(RuntimeError, match="no discriminator"):
        objective.discriminator_loss(G, None, schedule, torch.zeros(4, 1))
    with pytest.raises(ValueError, match="objective"):
        objectives.from_config({"type": "gaussian", "prediction": "eps"})
