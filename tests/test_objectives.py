"""Behaviour of the objectives: where gradients go, signs, R1, marginal discriminators, composition."""

from __future__ import annotations

import pytest
import torch

from gdiff import objectives
from gdiff.nets.toy import ToyDiscriminator, ToyGenerator
from gdiff.objectives import Pair, StepData
from gdiff.processes import Schedule


def nets(pairwise: bool, heads=("regression", "denoised"), seed: int = 0):
    torch.manual_seed(seed)
    G = ToyGenerator((2,), width=32, depth=2, time_dim=8)
    D = ToyDiscriminator((2,), width=32, depth=2, time_dim=8, pairwise=pairwise, heads=heads)
    return G, D


def grads(module: torch.nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in module.parameters()]


X0 = torch.randn(64, 2)

CASES = {
    "ddgan": (objectives.ddgan(r1_gamma=0.5, lazy_reg=1), True, Schedule.vp(2)),
    "ddgan+denoise": (objectives.ddgan(r1_gamma=0.0, denoise_weight=1.0), True, Schedule.vp(4)),
    "siddm": (objectives.siddm(afd_weight=1.0, denoise_weight=1.0), False, Schedule.cosine(2)),
    "siddm_no_afd": (objectives.siddm(afd_weight=0.0), False, Schedule.cosine(4)),
    "siddm_no_entropy": (objectives.siddm(entropy=False), False, Schedule.cosine(2)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_d_step_trains_d_only(name):
    objective, pairwise, schedule = CASES[name]
    G, D = nets(pairwise, heads=objective.required_heads)
    objective.check(D)
    objective.discriminator_loss(G, D, schedule, X0).total.backward()
    assert all(g is None for g in grads(G)), "the D step must not build or back-propagate a generator graph"
    d_grads = grads(D)
    assert all(g is not None for g in d_grads[:4]), "the trunk of D must receive gradients"
    assert sum(float(g.abs().sum()) for g in d_grads if g is not None) > 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_g_step_trains_g_only(name):
    objective, pairwise, schedule = CASES[name]
    G, D = nets(pairwise, heads=objective.required_heads)
    D.requires_grad_(False)  # what the Trainer does around the G step
    objective.generator_loss(G, D, schedule, X0).total.backward()
    assert all(g is None for g in grads(D))
    g_grads = grads(G)
    assert all(g is not None and torch.isfinite(g).all() for g in g_grads)
    assert all(float(g.abs().sum()) > 0 for g in g_grads), "every generator parameter must get a gradient"


def test_marginal_discriminator_never_sees_x_t():
    class Spy(ToyDiscriminator):
        def forward(self, x_prev, t, x_t=None, labels=None, heads=()):
            assert x_t is None, "a marginal objective passed x_t to the discriminator"
            return super().forward(x_prev, t, x_t, labels, heads)

    torch.manual_seed(0)
    G = ToyGenerator((2,), width=16, depth=1)
    D = Spy((2,), width=16, depth=1, pairwise=False, heads=("regression", "denoised"))
    objective = objectives.siddm(denoise_weight=1.0)
    objective.discriminator_loss(G, D, Schedule.cosine(2), X0)
    objective.generator_loss(G, D, Schedule.cosine(2), X0)


def test_marginal_discriminator_output_is_independent_of_x_t():
    _, D = nets(pairwise=False)
    x, t = torch.randn(8, 2), torch.rand(8)
    x_t = torch.randn(8, 2, requires_grad=True)
    out = D(x, t, x_t, heads=("regression", "denoised"))
    for value in out.values():
        assert torch.equal(value, D(x, t, torch.randn(8, 2) * 100, heads=("regression", "denoised"))[
            [k for k, v in out.items() if v is value][0]])
    assert sum(v.sum() for v in out.values()).requires_grad
    assert torch.autograd.grad(sum(v.sum() for v in out.values()), x_t, allow_unused=True)[0] is None


def test_pairwise_discriminator_depends_on_x_t():
    _, D = nets(pairwise=True)
    x, t = torch.randn(8, 2), torch.rand(8)
    assert not torch.allclose(D(x, t, torch.randn(8, 2)), D(x, t, torch.randn(8, 2)))


def _fixed_data(schedule, G, D, seed=0):
    torch.manual_seed(seed)
    pair = Pair.draw(schedule, X0)
    z = torch.randn(X0.shape[0], G.z_dim)
    x0 = G(pair.x_t, pair.t.float(), z)
    return pair, x0, schedule.posterior_sample(x0, pair.x_t, pair.s, pair.t)


def test_entropy_term_signs():
    """C (the regression head) lowers its error in the D step; G raises that same error in the G step."""
    schedule = Schedule.cosine(4)
    G, D = nets(pairwise=False)
    term = objectives.AdversarialEntropy(weight=1.0)

    def c_error(detach: bool) -> torch.Tensor:
        pair, x0, x_s = _fixed_data(schedule, G, D)
        data = StepData(schedule, pair, x0, x_s.detach() if detach else x_s)
        data.fake = D(data.fake_x_s, pair.t.float(), heads=("regression",))
        return data, ((data.fake["regression"] - pair.x_t) ** 2).mean()

    data, err = c_error(detach=True)
    loss = term.discriminator_loss(data)["c_fit"]
    assert torch.allclose(loss, err)
    loss.backward()
    with torch.no_grad():
        for p in D.parameters():
            if p.grad is not None:
                p -= 0.05 * p.grad
    D.zero_grad()
    assert c_error(detach=True)[1] < err, "the D step must reduce the regression error of C"

    D.requires_grad_(False)
    data, err = c_error(detach=False)
    loss = term.generator_loss(data)["neg_entropy"]
    assert torch.allclose(loss, -err)
    loss.backward()
    with torch.no_grad():
        for p in G.parameters():
            p -= 0.05 * p.grad
    assert c_error(detach=False)[1] > err, "the G step must increase C's error (raise the entropy)"


def test_afd_cross_entropy_matches_formula():
    schedule = Schedule.cosine(4)
    G, D = nets(pairwise=False)
    pair, x0, x_s = _fixed_data(schedule, G, D)
    data = StepData(schedule, pair, x0, x_s)
    alpha_bar = schedule.alpha_bar
    a64 = (alpha_bar(pair.t) / alpha_bar(pair.s))[:, None]
    a, beta = a64.float(), (1 - a64).float()
    expected = ((pair.x_t - a.sqrt() * x_s) ** 2).mean()
    got = objectives.AFDCrossEntropy(1.0).generator_loss(data)["afd_ce"]
    assert torch.allclose(got, expected, rtol=1e-5)
    weighted = objectives.AFDCrossEntropy(1.0, weighting="inverse_beta").generator_loss(data)["afd_ce"]
    assert torch.allclose(weighted, ((pair.x_t - a.sqrt() * x_s) ** 2 / (2 * beta)).mean(), rtol=1e-5)


def test_r1_matches_finite_differences():
    """R1 = (gamma/2) E ||d D / d x_s||^2, checked against central differences in float64."""
    G, D = nets(pairwise=True)
    G, D = G.double(), D.double()
    schedule = Schedule.vp(2)
    torch.manual_seed(1)
    pair = Pair.draw(schedule, X0[:16].double())
    x_s = pair.x_s.clone().requires_grad_(True)
    pair.x_s = x_s
    data = StepData(schedule, pair, x_s, x_s)
    data.real = {"logits": D(x_s, pair.t, pair.x_t)}
    got = objectives.R1Penalty(gamma=2.0, every=1).discriminator_loss(data)["r1"]

    eps, sq = 1e-6, torch.zeros(16, dtype=torch.float64)
    with torch.no_grad():
        for j in range(2):
            step = torch.zeros_like(x_s)
            step[:, j] = eps
            diff = (D(x_s + step, pair.t, pair.x_t) - D(x_s - step, pair.t, pair.x_t)) / (2 * eps)
            sq += diff**2
    assert torch.allclose(got, sq.mean(), rtol=1e-6)


def test_lazy_r1_and_weights_in_total():
    G, D = nets(pairwise=True)
    schedule = Schedule.vp(2)
    objective = objectives.ddgan(r1_gamma=0.4, lazy_reg=3)
    on = objective.discriminator_loss(G, D, schedule, X0, step=3)
    off = objective.discriminator_loss(G, D, schedule, X0, step=4)
    assert "d/r1" in on.parts and "d/r1" not in off.parts
    expected = on.parts["d/adv_real"] + on.parts["d/adv_fake"] + 0.2 * on.parts["d/r1"]
    assert torch.allclose(on.total.detach(), expected)
    assert torch.allclose(off.total.detach(), off.parts["d/adv_real"] + off.parts["d/adv_fake"])


def test_posterior_draw_carries_gradient_to_x0_prediction():
    schedule = Schedule.cosine(2)
    x0 = torch.randn(4, 2, requires_grad=True)
    x_t = torch.randn(4, 2)
    s, t = torch.full((4,), 0.25), torch.full((4,), 0.75)
    schedule.posterior_sample(x0, x_t, s, t).sum().backward()
    c0, _, _ = schedule.posterior_coefficients(s.double(), t.double())
    assert torch.allclose(x0.grad, c0.float()[:, None].expand(4, 2))


def test_ablations_are_one_argument_each():
    names = lambda o: sorted(type(t).__name__ for t in o.terms)  # noqa: E731
    assert names(objectives.siddm()) == ["AFDCrossEntropy", "AdversarialEntropy", "NonSaturatingGAN"]
    assert names(objectives.siddm(afd_weight=0)) == ["NonSaturatingGAN"]
    assert names(objectives.siddm(entropy=False)) == ["AFDCrossEntropy", "NonSaturatingGAN"]
    assert names(objectives.siddm(adversarial_weight=0)) == ["AFDCrossEntropy", "AdversarialEntropy"]
    assert names(objectives.ddgan(denoise_weight=1)) == ["DenoisingRegularizer", "NonSaturatingGAN", "R1Penalty"]
    assert not objectives.siddm(adversarial_weight=0, entropy=False).trains_discriminator
    custom = objectives.from_config({"type": "terms", "terms": [
        {"term": "adversarial", "pairwise": False}, {"term": "afd_cross_entropy", "weight": 0.5}]})
    assert names(custom) == ["AFDCrossEntropy", "NonSaturatingGAN"] and custom.terms[1].weight == 0.5


def test_objective_checks_its_discriminator():
    _, marginal = nets(pairwise=False)
    _, pairwise = nets(pairwise=True)
    with pytest.raises(ValueError, match="pairwise"):
        objectives.ddgan().check(nets(pairwise=False, heads=())[1])
    with pytest.raises(ValueError, match="marginal"):
        objectives.siddm().check(pairwise)

    class NoHeads(torch.nn.Module):
        heads = frozenset()
        pairwise = False

    with pytest.raises(ValueError, match="regression"):
        objectives.siddm().check(NoHeads())
    with pytest.raises(ValueError, match="never used"):
        objectives.siddm(entropy=False).check(marginal)
    with pytest.raises(ValueError, match="mixes"):
        objectives.Objective([objectives.NonSaturatingGAN(pairwise=True), objectives.AdversarialEntropy()])


@pytest.mark.parametrize("section, match", [
    ({"type": "wgan"}, "objective.type"),
    ({"type": "siddm", "afd_wieght": 1}, "afd_wieght"),
    ({"type": "ddgan", "r1_gamma": -1}, "r1_gamma"),
    ({"type": "ddgan", "lazy_reg": 0}, "lazy_reg"),
    ({"type": "siddm", "afd_weighting": "sqrt"}, "afd_weighting"),
    ({"type": "terms", "terms": [{"term": "hinge"}]}, r"objective.terms\[0\]"),
])
def test_bad_objective_config(section, match):
    with pytest.raises(ValueError, match=match):
        objectives.from_config(section)
