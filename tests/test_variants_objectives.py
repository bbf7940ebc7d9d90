"""Where the discriminator looks (x_{t-1} or x0), UFOGen's objective and the reconstruction term."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gdiff import objectives
from gdiff.objectives import Objective, Pair, Reconstruction, StepData
from gdiff.objectives.afd import AFDCrossEntropy
from gdiff.parameterization import Parameterization
from gdiff.processes import Schedule

N = 4000
C = torch.tensor([[0.8, -0.4]])  # the constant x0 prediction of the test generator


class Constant(nn.Module):
    """Predicts C whatever its input; records x_t."""

    def __init__(self, parameterization: Parameterization | None = None) -> None:
        super().__init__()
        self.value = nn.Parameter(C.clone())
        self.z_dim = 2
        self.x_t: list[torch.Tensor] = []
        if parameterization is not None:
            self.parameterization = parameterization

    def forward(self, x_t, t, z, labels=None):
        self.x_t.append(x_t.detach().clone())
        return self.value.expand_as(x_t)


class Recorder(nn.Module):
    """A discriminator that records what it is shown: (x, t, x_t) per call."""

    def __init__(self, pairwise: bool) -> None:
        super().__init__()
        self.pairwise, self.heads = pairwise, frozenset()
        self.w = nn.Parameter(torch.ones(2))
        self.seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []

    def forward(self, x, t, x_t=None, labels=None):
        self.seen.append((x.detach().clone(), t.detach().clone(), None if x_t is None else x_t.detach().clone()))
        return x @ self.w


def _abar(tau: float) -> float:
    return math.cos((tau + 0.008) / 1.008 * math.pi / 2) ** 2


def _standard(z: torch.Tensor) -> bool:
    """z looks like N(0, 1) draws: mean and std within 4 standard errors."""
    return bool(z.mean().abs() < 4 / math.sqrt(z.numel()) and (z.std() - 1).abs() < 4 / math.sqrt(2 * z.numel()))


SCHEDULE = Schedule.cosine(2, time_sampling="grid")  # pairs (0, 1/2) and (1/2, 1)


@pytest.mark.parametrize("pairwise", [False, True])
def test_x_prev_discriminator_sees_real_and_posterior_samples_of_x_s(pairwise):
    torch.manual_seed(0)
    G, D, x0 = Constant(), Recorder(pairwise), torch.randn(N, 2)
    objective = objectives.ddgan(r1_gamma=0) if pairwise else objectives.siddm(afd_weight=0)
    objective.discriminator_loss(G, D, SCHEDULE, x0)
    (real, t_real, xt_real), (fake, t_fake, xt_fake) = D.seen
    assert (xt_real is not None) == pairwise and torch.equal(t_real, t_fake)
    top = t_real == 1.0  # pairs (s, t) = (1/2, 1)
    abar_s, abar_t = _abar(0.5), _abar(1.0)
    assert _standard((real[top] - math.sqrt(abar_s) * x0[top]) / math.sqrt(1 - abar_s))  # real x_s ~ q(x_s | x0)
    s = torch.where(top, 0.5, 0.0).double()
    mean, var = SCHEDULE.posterior(C.expand(N, 2), G.x_t[0], s, t_real.double())
    assert _standard(((fake - mean) / var.sqrt())[top])  # fake x_s ~ q(x_s | x_t, x0')
    assert not torch.equal(real, x0) and abar_t < 1e-6


@pytest.mark.parametrize("pairwise", [False, True])
def test_x0_discriminator_sees_the_data_and_the_x0_prediction(pairwise):
    torch.manual_seed(0)
    G, D, x0 = Constant(), Recorder(pairwise), torch.randn(N, 2)
    objective = objectives.ddgan(r1_gamma=0, d_input="x0") if pairwise else objectives.siddm(
        d_input="x0", entropy=False)
    objective.discriminator_loss(G, D, SCHEDULE, x0)
    (real, t_real, xt_real), (fake, t_fake, xt_fake) = D.seen
    assert torch.equal(real, x0) and torch.equal(fake, C.expand(N, 2))
    assert torch.equal(t_real, t_fake) and set(t_real.tolist()) == {0.5, 1.0}  # conditioned on the pair's t
    if pairwise:
        assert torch.equal(xt_real, G.x_t[0]) and torch.equal(xt_fake, G.x_t[0])  # (x0, x_t) vs (x0', x_t)
    else:
        assert xt_real is None and xt_fake is None
    objective.generator_loss(G, D, SCHEDULE, x0).total.backward()
    assert torch.equal(D.seen[2][0], C.expand(N, 2)) and G.value.grad is not None


def test_x0_discriminator_rejects_terms_defined_on_x_prev():
    with pytest.raises(ValueError, match="heads"):
        objectives.siddm(d_input="x0")  # the entropy term's regression head reads x_{t-1}
    with pytest.raises(NotImplementedError, match="r1_gamma"):
        objectives.ddgan(d_input="x0")
    with pytest.raises(ValueError, match="d_input"):
        objectives.siddm(d_input="x_t")
    objective = objectives.siddm(d_input="x0", entropy=False)
    with pytest.raises(ValueError, match="x_prev"):
        objective.check_generator(Parameterization("x_prev"))
    objective.check_generator(Parameterization("eps"))


def test_afd_cross_entropy_is_the_authors_pushed_forward_error_less_a_constant():
    """The authors' toy AFD, mean (sqrt(a) x_s' + sqrt(beta) eps - x_t)^2, has the expectation (and gradient)
    of gdiff's mean (x_t - sqrt(a) x_s')^2 plus beta: the unweighted AFD cross-entropy is its noise-free form."""
    torch.manual_seed(0)
    schedule = Schedule.cosine(4)
    s, t = torch.full((64,), 0.25, dtype=torch.float64), torch.full((64,), 0.5, dtype=torch.float64)
    x0 = torch.randn(64, 2, dtype=torch.float64)
    pair = Pair(x0, s, t, x0, torch.randn(64, 2, dtype=torch.float64))
    fake_x_s = torch.randn(64, 2, dtype=torch.float64)
    ours = AFDCrossEntropy(1.0).generator_loss(StepData(schedule, pair, None, fake_x_s))["afd_ce"]
    sqrt_a, beta = schedule.step_coefficients(s[:1], t[:1])
    draws = 20_000
    pushed = sqrt_a * fake_x_s + beta.sqrt() * torch.randn(draws, 64, 2, dtype=torch.float64)
    authors = (pushed - pair.x_t).square().mean()
    assert abs(authors - ours - beta) < 4 * ours.item() / math.sqrt(draws * 64 * 2) + 0.01


def test_ufogen_fake_is_a_forward_draw_of_the_x0_prediction():
    torch.manual_seed(0)
    objective = objectives.ufogen()
    with pytest.raises(ValueError, match="generator.transition: forward"):
        objective.check_generator(Parameterization("x0", "posterior"))
    G, D, x0 = Constant(Parameterization("x0", "forward")), Recorder(False), torch.randn(N, 2)
    objective.discriminator_loss(G, D, SCHEDULE, x0)
    (_, t, _), (fake, _, _) = D.seen
    s = torch.where(t == 1.0, 0.5, 0.0)
    abar_s = torch.tensor([_abar(v) for v in s.tolist()])[:, None]
    noise = (fake - abar_s.sqrt() * C) / (1 - abar_s).sqrt()
    assert _standard(noise[t == 1.0])
    assert abs(torch.corrcoef(torch.stack([noise[t == 1.0, 0], G.x_t[0][t == 1.0, 0]]))[0, 1]) < 0.06


def test_ufogen_generator_loss_adds_the_x0_reconstruction():
    torch.manual_seed(0)
    G, D, x0 = Constant(Parameterization("x0", "forward")), Recorder(False), torch.randn(256, 2)
    losses = objectives.ufogen(reconstruction_weight=2.5, weighting="none").generator_loss(G, D, SCHEDULE, x0)
    rec = (C - x0).square().mean()
    torch.testing.assert_close(losses.parts["g/rec"], rec)
    adv = torch.nn.functional.softplus(-D.seen[0][0] @ D.w).mean()
    torch.testing.assert_close(losses.total, adv + 2.5 * rec)


@pytest.mark.parametrize(("norm", "fn"), [("l2", lambda e: e.square().mean()), ("l1", lambda e: e.abs().mean())])
def test_reconstruction_term(norm, fn):
    x0, pred = torch.randn(16, 3), torch.randn(16, 3)
    pair = Pair(x0, torch.zeros(16), torch.ones(16), x0, x0)
    got = Reconstruction(1.0, norm).generator_loss(StepData(SCHEDULE, pair, pred, pred))["rec"]
    torch.testing.assert_close(got, fn(pred - x0))
    with pytest.raises(ValueError, match="x_prev"):
        Reconstruction(1.0, norm).generator_loss(StepData(SCHEDULE, pair, None, pred))
    with pytest.raises(ValueError, match="norm"):
        Reconstruction(1.0, "huber")


def test_snr_weighted_reconstruction_is_the_epsilon_prediction_loss():
    """mean SNR(t) (x0' - x0)^2 equals mean (eps' - eps)^2, eps' the noise x0' implies for x_t (float64)."""
    schedule = Schedule.cosine(4)
    g = torch.Generator().manual_seed(0)
    x0, pred = torch.randn(32, 3, generator=g, dtype=torch.float64), torch.randn(32, 3, generator=g,
                                                                                 dtype=torch.float64)
    t = torch.rand(32, generator=g, dtype=torch.float64) * 0.9 + 0.05
    x_t = schedule.q_sample(x0, t)
    abar = torch.cos((t + 0.008) / 1.008 * math.pi / 2)[:, None] ** 2
    eps, eps_pred = ((x_t - abar.sqrt() * v) / (1 - abar).sqrt() for v in (x0, pred))
    pair = Pair(x0, t - 0.05, t, x0, x_t)
    got = Reconstruction(1.0, "l2", "snr").generator_loss(StepData(schedule, pair, pred, pred))["rec"]
    torch.testing.assert_close(got, (eps_pred - eps).square().mean(), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="l2"):
        Reconstruction(1.0, "l1", "snr")
    with pytest.raises(ValueError, match="weighting"):
        Reconstruction(1.0, "l2", "sigmoid")


def test_recipe_sections_build_the_variants():
    assert objectives.from_config({"type": "ufogen", "reconstruction_weight": 0.5}).transition == "forward"
    wavediff = objectives.from_config({"type": "wavediff"})
    assert wavediff.pairwise and [type(t).__name__ for t in wavediff.terms] == [
        "NonSaturatingGAN", "R1Penalty", "Reconstruction"]
    terms = objectives.from_config({"type": "terms", "d_input": "x0", "terms": [
        {"term": "adversarial", "pairwise": False}, {"term": "afd_cross_entropy", "weight": 1.0}]})
    assert isinstance(terms, Objective) and terms.d_input == "x0"
    with pytest.raises(ValueError, match="unknown keys"):
        objectives.from_config({"type": "terms", "d_inputs": "x0", "terms": [{"term": "adversarial",
                                                                               "pairwise": False}]})
    with pytest.raises(ValueError, match="d_input"):
        objectives.from_config({"type": "siddm", "d_input": "posterior"})
