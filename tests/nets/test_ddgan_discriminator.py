"""DDGAN discriminators: paper sizes, contract, marginal mode, minibatch std, gradients and fast paths."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gdiff.nets import build
from gdiff.nets.ddgan_discriminator import DDGANLargeDiscriminator, DDGANSmallDiscriminator, minibatch_stddev

SHAPE = (3, 16, 16)
TINY = dict(channels=8, t_emb_dim=16)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def tiny(**kw) -> DDGANSmallDiscriminator:
    """Small layout at width 8, near-zero convolutions given unit-scale weights (as after training)."""
    torch.manual_seed(0)
    D = DDGANSmallDiscriminator(SHAPE, **{**TINY, **kw})
    for m in D.modules():
        if isinstance(m, nn.Conv2d) and m.weight.abs().max() < 1e-3:
            nn.init.xavier_uniform_(m.weight)
    return D


def inputs(batch: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, *SHAPE, generator=g), torch.rand(batch, generator=g),
            torch.randn(batch, *SHAPE, generator=g))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@pytest.mark.parametrize(("kind", "size", "paper"),
                         [("ddgan_small", 32, 12.7e6), ("ddgan_large", 256, 27.7e6)])
def test_paper_parameter_counts(kind, size, paper):
    D = build({"type": kind, "channels": 64}, data_shape=(3, size, size))
    assert abs(n_params(D) / paper - 1) < 0.02


def test_contract_shapes_and_heads():
    D = tiny()
    x, t, xt = inputs()
    assert D(x, t, xt).shape == (8,)
    assert D.pairwise and D.heads == frozenset()
    with pytest.raises(ValueError, match="denoised"):
        D(x, t, xt, heads=("denoised",))
    with pytest.raises(ValueError, match="pass x_t"):
        D(x, t)
    large = DDGANLargeDiscriminator((3, 64, 64), **TINY)  # six halvings: 64 -> 1
    assert large(torch.randn(4, 3, 64, 64), torch.rand(4), torch.randn(4, 3, 64, 64)).shape == (4,)
    with pytest.raises(ValueError, match="divisible"):
        DDGANLargeDiscriminator((3, 32, 32), **TINY)


def test_pair_time_and_label_change_the_logits():
    D = tiny(num_classes=3, projection=True)
    x, t, xt = inputs()
    _, t2, xt2 = inputs(seed=1)
    labels = torch.arange(8) % 3
    base = D(x, t, xt, labels)
    assert rel_err(D(x, t, xt2, labels), base) > 1e-2
    assert rel_err(D(x, t2, xt, labels), base) > 1e-2
    assert rel_err(D(x, t, xt, (labels + 1) % 3), base) > 1e-2
    assert torch.equal(D(x, t, xt), D(x, t, xt, torch.full((8,), -1)))


def test_projection_needs_classes():
    with pytest.raises(ValueError, match="projection"):
        DDGANSmallDiscriminator(SHAPE, projection=True, **TINY)


def test_marginal_mode_never_reads_x_t():
    D = tiny(pairwise=False)
    x, t, _ = inputs()
    assert not D.pairwise and D.conv_in.in_channels == SHAPE[0]
    base = D(x, t)
    assert torch.equal(D(x, t, torch.full((8, *SHAPE), float("nan"))), base)
    assert torch.equal(D(x, t, x_t=torch.randn(8, *SHAPE)), base)


def test_minibatch_stddev_groups_samples():
    h = torch.randn(8, 5, 3, 3, dtype=torch.float64)
    out = minibatch_stddev(h)
    assert out.shape == (8, 6, 3, 3) and torch.equal(out[:, :5], h)
    for b in range(8):  # group of sample b: {b % 2, b % 2 + 2, b % 2 + 4, b % 2 + 6}
        members = h[b % 2::2]
        expected = (members.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        assert torch.allclose(out[b, 5], expected.expand(3, 3))
    assert minibatch_stddev(torch.randn(6, 2, 2, 2)).shape == (6, 3, 2, 2)  # groups of 3


def test_every_parameter_gets_a_gradient():
    D = DDGANSmallDiscriminator(SHAPE, num_classes=3, projection=True, **TINY)  # real initialisation
    x, t, xt = inputs()
    D(x, t, xt, torch.tensor([0, 1, 2, -1, 0, 1, 2, -1])).sum().backward()
    for name, p in D.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().max() > 0, name


def test_channels_last_and_bf16_match_plain():
    D = tiny()
    x, t, xt = inputs()
    with torch.no_grad():
        plain = D(x, t, xt)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = D(x, t, xt)
        D.to(memory_format=torch.channels_last)
        last = D(x.to(memory_format=torch.channels_last), t, xt.to(memory_format=torch.channels_last))
    assert rel_err(last, plain) < 1e-5
    assert rel_err(half, plain) < 3e-2


def test_torch_compile_matches_plain():
    D = tiny()
    x, t, xt = inputs()
    with torch.no_grad():
        plain = D(x, t, xt)
        fast = torch.compile(D, fullgraph=True)(x, t, xt)
    assert rel_err(fast, plain) < 1e-4
