"""R1 on a sub-batch (``r1_batch_fraction`` < 1): same penalty and gradient in expectation, exact over a
partition, the full-batch path unchanged, the double backward confined to the sub-batch pass."""

from __future__ import annotations

import math
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gdiff import objectives
from gdiff.nets.toy import ToyDiscriminator, ToyGenerator
from gdiff.objectives import Pair, R1Penalty, StepData, r1_penalty
from gdiff.parameterization import reverse_step
from gdiff.processes import Schedule
from tests.test_cli import ROOT, run

F64 = torch.float64
SCHEDULE = Schedule.vp(4)


def nets(dtype: torch.dtype = torch.float32, pairwise: bool = True) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    G = ToyGenerator((3,), width=16, depth=2, time_dim=8).to(dtype)
    D = ToyDiscriminator((3,), width=16, depth=2, time_dim=8, pairwise=pairwise, heads=()).to(dtype)
    return G, D


def d_grads(D: nn.Module) -> torch.Tensor:
    """D's gradients as one vector (zeros where none reached: R1 does not depend on the last bias)."""
    return torch.cat([torch.zeros(p.numel(), dtype=p.dtype) if p.grad is None else p.grad.flatten()
                      for p in D.parameters()])


class Recorder(nn.Module):
    """The same discriminator, recording the batch size of every call."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, []

    def forward(self, x: torch.Tensor, *args, **kwargs):
        self.calls.append((x.shape[0], x.requires_grad))
        return self.inner(x, *args, **kwargs)


def test_fraction_one_is_bit_identical_to_the_shared_real_pass():
    """The default is today's computation, written out here: one real pass whose input requires grad, shared by
    the adversarial loss and R1; same losses and same D gradients, bit for bit."""
    G, D = nets()
    x0 = torch.randn(16, 3)
    objective = objectives.ddgan(r1_gamma=0.3, lazy_reg=1)
    assert objective.grad_fraction == 1.0
    torch.manual_seed(7)
    losses = objective.discriminator_loss(G, D, SCHEDULE, x0, step=0)
    losses.total.backward()
    got = d_grads(D)

    D.zero_grad(set_to_none=True)
    torch.manual_seed(7)
    pair = Pair.draw(SCHEDULE, x0)
    with torch.no_grad():
        _, fake = reverse_step(G, SCHEDULE, pair.x_t, pair.s, pair.t)
    x_s = pair.x_s.requires_grad_(True)
    real, fake = D(x_s, pair.t.float(), pair.x_t), D(fake, pair.t.float(), pair.x_t)
    parts = {"adv_real": F.softplus(-real).mean(), "adv_fake": F.softplus(fake).mean(), "r1": r1_penalty(real, x_s)}
    total = parts["adv_real"] + parts["adv_fake"] + 0.15 * parts["r1"]
    total.backward()
    for key, value in parts.items():
        assert torch.equal(losses.parts[f"d/{key}"], value.detach()), key
    assert torch.equal(losses.total.detach(), total.detach()) and torch.equal(got, d_grads(D))


def test_sub_batch_pass_is_r1_of_the_first_samples_and_leaves_the_adversarial_loss_alone():
    G, D = nets()
    x0 = torch.randn(16, 3)
    full, quarter = (objectives.ddgan(r1_gamma=0.3, lazy_reg=1, r1_batch_fraction=f) for f in (1.0, 0.25))
    torch.manual_seed(3)
    a = full.discriminator_loss(G, D, SCHEDULE, x0, step=0)
    torch.manual_seed(3)
    b = quarter.discriminator_loss(G, D, SCHEDULE, x0, step=0)
    for key in ("d/adv_real", "d/adv_fake", "d/logit_real", "d/logit_fake"):
        assert torch.equal(a.parts[key], b.parts[key]), key
    torch.manual_seed(3)
    pair = Pair.draw(SCHEDULE, x0).head(4)  # the same draw as inside the objective
    x_s = pair.x_s.requires_grad_(True)
    assert torch.equal(b.parts["d/r1"], r1_penalty(D(x_s, pair.t.float(), pair.x_t), x_s).detach())
    assert not torch.equal(a.parts["d/r1"], b.parts["d/r1"])


@pytest.mark.parametrize("chunks", [2, 4, 16])
def test_mean_over_a_partition_equals_the_full_batch_penalty_and_gradient(chunks):
    """Float64: the sub-batch penalties of the disjoint sub-batches average to the full-batch penalty, and so do
    their gradients w.r.t. D's parameters (R1 is a mean of per-sample terms)."""
    G, D = nets(F64)
    torch.manual_seed(1)
    pair = Pair.draw(SCHEDULE, torch.randn(16, 3, dtype=F64))
    term = R1Penalty(gamma=1.0, every=1, batch_fraction=1 / chunks)

    def penalty(data: StepData) -> tuple[torch.Tensor, torch.Tensor]:
        D.zero_grad(set_to_none=True)
        value = term.discriminator_loss(data)["r1"]
        value.backward()
        return value.detach(), d_grads(D)

    x_s = pair.x_s.clone().requires_grad_(True)
    whole = StepData(SCHEDULE, Pair(pair.x0, pair.s, pair.t, x_s, pair.x_t), None, x_s)
    whole.real = {"logits": D(x_s, pair.t, pair.x_t)}
    full_value, full_grad = penalty(whole)
    values, grads = [], []
    n = 16 // chunks
    for i in range(chunks):
        sub = Pair(*(v[i * n:(i + 1) * n] for v in (pair.x0, pair.s, pair.t, pair.x_s, pair.x_t)))
        x = sub.x_s.clone().requires_grad_(True)
        data = StepData(SCHEDULE, pair, None, pair.x_s)
        data.grad_pass = (x, {"logits": D(x, sub.t, sub.x_t)})
        value, grad = penalty(data)
        values.append(value)
        grads.append(grad)
    torch.testing.assert_close(torch.stack(values).mean(), full_value, rtol=1e-12, atol=0)
    torch.testing.assert_close(torch.stack(grads).mean(0), full_grad, rtol=1e-10, atol=1e-14)
    assert torch.stack(values).std() > 1e-3 * full_value  # the sub-batches do differ: not a trivial equality


def _z(diffs: torch.Tensor) -> torch.Tensor:
    """|mean| / standard error of each column of [K, ...] paired differences (0 where they are all 0)."""
    se, mean = diffs.std(0) / math.sqrt(diffs.shape[0]), diffs.mean(0).abs()
    return torch.where(se > 0, mean / se.clamp(min=1e-300), torch.where(mean > 0, math.inf, 0.0))


def test_expectation_over_draws_matches_the_full_batch_penalty():
    """Many R1 steps on shuffled batches (as the data stream gives them), the same draws for both fractions: the
    mean sub-batch penalty and its mean gradient w.r.t. D's parameters match the full batch's within 5 standard
    errors, and a 2x-biased estimator is rejected (the check has the power to see a bias)."""
    G, D = nets(F64, pairwise=False)  # R1 alone has no pairing opinion: the objective feeds D no x_t
    data = torch.randn(32, 3, dtype=F64)
    # R1 alone (gamma 2: the loss is the penalty itself), so the loss gradient is the penalty's gradient
    full, quarter = (objectives.ddgan(r1_gamma=2.0, lazy_reg=1, adversarial_weight=0, r1_batch_fraction=f)
                     for f in (1.0, 0.25))
    values, grads = [], []
    for seed in range(150):
        x0 = data[torch.randperm(32, generator=torch.Generator().manual_seed(seed))[:16]]
        for objective in (full, quarter):
            torch.manual_seed(seed)
            losses = objective.discriminator_loss(G, D, SCHEDULE, x0, step=0)
            values.append(losses.total.detach())
            D.zero_grad(set_to_none=True)
            losses.total.backward()
            grads.append(d_grads(D))
    v, g = torch.stack(values).reshape(-1, 2), torch.stack(grads).reshape(-1, 2, grads[0].numel())
    assert float(_z(v[:, 1] - v[:, 0])) < 5
    assert float(_z(g[:, 1] - g[:, 0]).max()) < 5
    assert float(_z(2 * v[:, 1] - v[:, 0])) > 10 and float(_z(2 * g[:, 1] - g[:, 0]).max()) > 10
    assert (v[:, 1] != v[:, 0]).all()  # the sub-batch estimate is a different number at every step


def test_sub_batch_pass_alone_is_differentiated_twice_on_the_eager_module():
    """R1 step with a fraction: the full-batch passes (real, fake) run on D without input gradients, the
    sub-batch pass on D_eager with them. Fraction 1: the real pass itself runs on D_eager. No R1: D only."""
    G, D = nets()
    x0 = torch.randn(16, 3)
    for fraction, step, on_d, on_eager in [(0.25, 0, [(16, False), (16, False)], [(4, True)]),
                                           (1.0, 0, [(16, False)], [(16, True)]),
                                           (0.99, 0, [(16, False)], [(16, True)]),  # ceil(15.8): no sub-batch
                                           (0.25, 1, [(16, False), (16, False)], [])]:
        fast, eager = Recorder(D), Recorder(D)
        objective = objectives.ddgan(r1_gamma=0.3, lazy_reg=2, r1_batch_fraction=fraction)
        objective.discriminator_loss(G, fast, SCHEDULE, x0, step=step, D_eager=eager).total.backward()
        assert fast.calls == on_d and eager.calls == on_eager, (fraction, step)


def test_a_lazy_r1_step_on_a_sub_batch_reaches_every_discriminator_parameter():
    """DDP needs every D parameter in the loss of every step: the adversarial loss on the full batch does it."""
    G, D = nets()
    objective = objectives.ddgan(r1_gamma=0.3, lazy_reg=3, r1_batch_fraction=0.25)
    for step in (0, 1):
        D.zero_grad(set_to_none=True)
        objective.discriminator_loss(G, D, SCHEDULE, torch.randn(16, 3), step=step).total.backward()
        assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in D.parameters()), step


class _Grouped(nn.Module):
    def __init__(self, group: int) -> None:
        super().__init__()
        self.stddev_group = group


@pytest.mark.parametrize(("fraction", "batch", "group", "expected"),
                         [(0.25, 16, 0, 4), (0.25, 16, 4, 4), (0.25, 8, 4, 4), (0.1, 30, 0, 3), (0.1, 30, 4, 4),
                          (0.5, 6, 0, 3), (0.01, 4, 0, 1), (0.01, 256, 4, 4), (0.25, 256, 4, 64), (1.0, 12, 4, 12)])
def test_sub_batch_size_rounds_up_to_whole_stddev_groups(fraction, batch, group, expected):
    objective = objectives.ddgan(r1_batch_fraction=fraction)
    assert objective.grad_batch_size(_Grouped(group), batch) == expected


def test_the_ddgan_discriminator_groups_set_the_sub_batch():
    from gdiff.nets import build
    D = build({"type": "ddgan_small", "channels": 8, "t_emb_dim": 16, "pairwise": True}, (3, 8, 8), 0,
              "discriminator")
    assert objectives.ddgan(r1_batch_fraction=0.25).grad_batch_size(D, 8) == D.stddev_group == 4


@pytest.mark.parametrize(("bad", "expected"), [(0, r"\(0, 1\]"), (-0.5, r"\(0, 1\]"), (1.5, r"\(0, 1\]"),
                                               ("half", "a number"), (True, "a number"), (None, "a number")])
def test_bad_fraction_is_named(bad, expected):
    with pytest.raises(ValueError, match=r"r1_batch_fraction.*" + expected):
        objectives.from_config({"type": "ddgan", "r1_batch_fraction": bad})


def test_recipe_keys_and_terms():
    assert objectives.from_config({"type": "ddgan", "r1_batch_fraction": 0.25}).grad_fraction == 0.25
    assert objectives.from_config({"type": "siddm", "r1_gamma": 0.1, "r1_batch_fraction": 0.5}).grad_fraction == 0.5
    terms = {"type": "terms", "terms": [{"term": "adversarial", "pairwise": True},
                                        {"term": "r1", "gamma": 0.1, "every": 4, "batch_fraction": 0.5}]}
    objective = objectives.from_config(terms)
    assert objective.grad_fraction == 0.5 and "batch_fraction=0.5" in repr(objective)
    assert objectives.ddgan(r1_gamma=0).grad_fraction == 1.0  # no R1 term: nothing to shrink
    with pytest.raises(ValueError, match=r"different sub-batch fractions \[0.25, 0.5\]"):
        objectives.Objective([R1Penalty(0.1, batch_fraction=0.25), R1Penalty(0.2, batch_fraction=0.5)])


def test_two_ddp_ranks_stay_in_sync_with_a_sub_batch_r1(tmp_path):
    """Two gloo ranks (as tests/test_cli.py), lazy R1 on a quarter of each rank's batch: the extra D pass
    does not upset DDP's gradient reduction, and the ranks end with identical networks."""
    run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--main_process_port", "29531", str(ROOT / "tests" / "distributed_worker.py"), str(tmp_path),
         "objective={type: ddgan, r1_gamma: 0.1, lazy_reg: 2, r1_batch_fraction: 0.25}",
         "discriminator.pairwise=true", "discriminator.heads=[]", "diffusion.schedule=vp"],
        env={"ACCELERATE_USE_CPU": "1"})
    ranks = [torch.load(tmp_path / f"rank{i}.pt") for i in range(2)]
    assert not torch.equal(ranks[0]["batch"], ranks[1]["batch"])
    for key in ("G", "D", "ema"):
        assert all(torch.equal(a, b) for a, b in zip(ranks[0][key], ranks[1][key], strict=True)), key
