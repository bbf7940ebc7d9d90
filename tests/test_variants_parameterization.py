"""Generator parameterisations and transitions (gdiff/parameterization.py), shared by objectives and sampler."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from gdiff import objectives
from gdiff.nets import build
from gdiff.parameterization import Parameterization, parameterization_of, reverse_step
from gdiff.processes import Schedule
from gdiff.sampling import sample

G_SECTION = {"type": "toy_generator", "width": 16, "depth": 2, "time_dim": 8}
D_SECTION = {"type": "toy_discriminator", "width": 16, "depth": 2, "time_dim": 8, "pairwise": False,
             "heads": ["regression"]}


class Constant(nn.Module):
    """A 'generator' whose output is a fixed tensor; it records its inputs and counts its calls."""

    def __init__(self, value: torch.Tensor, parameterization: Parameterization | None = None) -> None:
        super().__init__()
        self.value = nn.Parameter(value.clone())
        self.z_dim = 2
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []
        if parameterization is not None:
            self.parameterization = parameterization

    def forward(self, x_t, t, z, labels=None):
        self.calls.append((x_t.detach().clone(), t.detach().clone()))
        return self.value.expand_as(x_t)


def _vp_abar(tau: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * (20.0 - 0.1) * tau**2 - 0.1 * tau)


def test_eps_to_x0_matches_float64_formula():
    schedule = Schedule.vp(4)
    g = torch.Generator().manual_seed(0)
    out, x_t = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(6, 3, generator=g,
                                                                                 dtype=torch.float64)
    t = torch.tensor([0.001, 0.1, 0.3, 0.5, 0.9, 1.0], dtype=torch.float64)
    got = Parameterization("eps").x0(out, x_t, t, schedule)
    abar = _vp_abar(t.numpy())[:, None]
    want = (x_t.numpy() - np.sqrt(1 - abar) * out.numpy()) / np.sqrt(abar)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    # and back: the eps that G would have to output to predict a given x0 reproduces it
    x0 = torch.randn(6, 3, generator=g, dtype=torch.float64)
    eps = (x_t - torch.from_numpy(np.sqrt(abar)) * x0) / torch.from_numpy(np.sqrt(1 - abar))
    torch.testing.assert_close(Parameterization("eps").x0(eps, x_t, t, schedule), x0, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("checked", [True, False])
def test_eps_refuses_a_schedule_that_reaches_alpha_bar_zero(checked):
    """Checked once at build time, also against the unchecked schedule of the training step."""
    schedule = Schedule.cosine(2) if checked else Schedule.cosine(2).unchecked()
    with pytest.raises(ValueError, match="vp"):
        Parameterization("eps").check(schedule)
    Parameterization("eps").check(Schedule.vp(2))
    Parameterization("x0").check(schedule)


def test_forward_transition_moments_ignore_x_t():
    schedule = Schedule.cosine(4)
    x0 = torch.randn(5, 2, dtype=torch.float64)
    s, t = torch.full((5,), 0.25, dtype=torch.float64), torch.full((5,), 0.5, dtype=torch.float64)
    param = Parameterization("x0", "forward")
    mean_a, var_a = param.transition_moments(x0, torch.randn(5, 2, dtype=torch.float64), s, t, schedule)
    mean_b, var_b = param.transition_moments(x0, torch.randn(5, 2, dtype=torch.float64), s, t, schedule)
    abar_s = math.cos((0.25 + 0.008) / 1.008 * math.pi / 2) ** 2
    torch.testing.assert_close(mean_a, math.sqrt(abar_s) * x0)
    torch.testing.assert_close(var_a, torch.full((5, 1), 1 - abar_s, dtype=torch.float64))
    torch.testing.assert_close((mean_a, var_a), (mean_b, var_b))


def test_forward_transition_draws_from_q_xs_given_x0():
    schedule = Schedule.cosine(2)
    x0 = torch.tensor([[1.5, -0.5]])
    G = Constant(x0, Parameterization("x0", "forward"))
    n = 20_000
    s, t = torch.full((n,), 0.5, dtype=torch.float64), torch.ones(n, dtype=torch.float64)
    torch.manual_seed(0)
    pred, x_s = reverse_step(G, schedule, torch.randn(n, 2) * 5, s, t)
    abar_s = math.cos((0.5 + 0.008) / 1.008 * math.pi / 2) ** 2
    noise = (x_s - math.sqrt(abar_s) * x0) / math.sqrt(1 - abar_s)
    assert torch.equal(pred, x0.expand(n, 2))
    assert noise.mean(0).abs().max() < 0.03 and (noise.std(0) - 1).abs().max() < 0.03
    assert abs(torch.corrcoef(torch.stack([noise[:, 0], G.calls[0][0][:, 0]]))[0, 1]) < 0.03  # x_t unused


def test_default_step_is_the_posterior_draw_of_the_x0_prediction():
    """The refactored step reproduces G -> posterior_sample draw for draw (same random numbers)."""
    schedule = Schedule.vp(4)
    torch.manual_seed(0)
    G = build(G_SECTION, (2,), where="generator")
    x_t, s, t = torch.randn(8, 2), schedule.times[1].expand(8), schedule.times[2].expand(8)
    torch.manual_seed(1)
    x0, x_s = reverse_step(G, schedule, x_t, s, t)
    torch.manual_seed(1)
    z = torch.randn(8, G.z_dim)
    want_x0 = G(x_t, t.float(), z)
    want = schedule.posterior_sample(want_x0, x_t, s, t, noise=torch.randn(8, 2))
    torch.testing.assert_close((x0, x_s), (want_x0, want))


def test_x_prev_never_draws_from_the_posterior(monkeypatch):
    """parameterization x_prev: the objective's fake and the sampler's steps are G's output itself."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the posterior was used")

    monkeypatch.setattr(Schedule, "posterior", forbidden)
    monkeypatch.setattr(Schedule, "posterior_sample", forbidden)
    torch.manual_seed(0)
    G = build({**G_SECTION, "parameterization": "x_prev"}, (2,), where="generator")
    D = build(D_SECTION, (2,), where="discriminator")
    schedule, x0 = Schedule.cosine(2), torch.randn(64, 2)
    g_out, d_in = [], []
    G.register_forward_hook(lambda module, args, out: g_out.append(out.detach().clone()))
    D.register_forward_hook(lambda module, args, out: d_in.append(args[0].detach().clone()))
    objective = objectives.siddm()
    objective.discriminator_loss(G, D, schedule, x0).total.backward()
    loss = objective.generator_loss(G, D, schedule, x0)
    loss.total.backward()
    assert torch.isfinite(loss.total)
    assert len(g_out) == 2 and len(d_in) == 3  # D step: real, fake; G step: fake
    assert torch.equal(d_in[1], g_out[0]) and torch.equal(d_in[2], g_out[1])
    x = sample(G, schedule, torch.randn(16, 2), generator=torch.Generator().manual_seed(0))
    assert len(g_out) == 4 and torch.equal(x, g_out[-1])


@pytest.mark.parametrize("param", [Parameterization(), Parameterization("x0", "forward"),
                                   Parameterization("x_prev"), Parameterization("eps")])
@pytest.mark.parametrize("steps", [1, 3])
def test_sampler_makes_one_network_call_per_step(param, steps):
    schedule = Schedule.vp(4, time_sampling="continuous")
    G = Constant(torch.zeros(1, 2), param)
    x = sample(G, schedule, torch.randn(5, 2), steps=steps)
    assert len(G.calls) == steps and x.shape == (5, 2)
    torch.testing.assert_close(G.calls[0][1], torch.ones(5))  # the first call starts from pure noise at t = 1


def test_one_step_sample_is_the_x0_prediction_from_pure_noise():
    """UFOGen's sampler: one network call on x_T, then the forward transition's mean at the clean level."""
    G = Constant(torch.tensor([[0.3, -0.7]]), Parameterization("x0", "forward"))
    x_T = torch.randn(4, 2)
    x = sample(G, Schedule.cosine(4), x_T, steps=1)
    assert len(G.calls) == 1 and torch.equal(G.calls[0][0], x_T)
    sqrt_abar_0 = math.cos(0.008 / 1.008 * math.pi / 2)  # the grid's clean level: the mean of q(x_0 | x0')
    torch.testing.assert_close(x, sqrt_abar_0 * torch.tensor([[0.3, -0.7]]).expand(4, 2))


def test_build_reads_the_generator_keys():
    G = build({**G_SECTION, "parameterization": "eps", "transition": "forward"}, (2,), where="generator")
    assert parameterization_of(G) == Parameterization("eps", "forward")
    assert parameterization_of(build(G_SECTION, (2,), where="generator")) == Parameterization()
    with pytest.raises(ValueError, match="parameterization"):
        build({**G_SECTION, "parameterization": "score"}, (2,), where="generator")
    with pytest.raises(ValueError, match="transition"):
        build({**G_SECTION, "transition": "ddim"}, (2,), where="generator")
    with pytest.raises(ValueError, match="transition"):
        build({**G_SECTION, "parameterization": "x_prev", "transition": "forward"}, (2,), where="generator")
    with pytest.raises(ValueError, match="generator keys"):
        build({**D_SECTION, "parameterization": "x0"}, (2,), where="discriminator")
