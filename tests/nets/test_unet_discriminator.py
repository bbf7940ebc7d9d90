"""SIDDM's multi-head U-Net discriminator (``unet_discriminator``) on tiny configurations."""

from __future__ import annotations

import pytest
import torch

from gdiff.nets import build
from gdiff.nets.unet_discriminator import UNetDiscriminator
from tests.nets.common import wake

ALL_HEADS = ("regression", "denoised", "pixel_logits")
TINY = {"channels": 8, "channel_mult": (1, 2), "num_res_blocks": 1, "attention_resolutions": (8,),
        "num_head_channels": 8, "num_groups": 4, "dropout": 0.0, "heads": ALL_HEADS}
ONE_LEVEL = {"channel_mult": (1,), "attention_resolutions": (16,)}  # for compile: short tracing


def tiny(data_shape=(3, 16, 16), **overrides) -> UNetDiscriminator:
    torch.manual_seed(0)
    return UNetDiscriminator(data_shape, **{**TINY, **overrides})


def pair(shape=(3, 16, 16), batch=4):
    return torch.randn(batch, *shape), torch.rand(batch), torch.randn(batch, *shape)


@pytest.mark.parametrize(("shape", "overrides"), [
    ((1, 32, 32), {"attention_resolutions": (16,)}),
    ((3, 32, 32), {"channel_mult": (1, 2, 2), "attention_resolutions": (16, 8), "pairwise": True}),
    ((3, 64, 64), {"channel_mult": (1, 1, 2, 2), "num_classes": 5, "projection": True}),
])
def test_output_shapes(shape, overrides):
    d = tiny(shape, **overrides)
    x, t, x_t = pair(shape, batch=2)
    labels = torch.tensor([1, -1]) if overrides.get("num_classes") else None
    assert d(x, t, x_t, labels).shape == (2,)
    out = d(x, t, x_t, labels, heads=ALL_HEADS)
    assert set(out) == {"logits", *ALL_HEADS}
    assert out["logits"].shape == (2,)
    assert out["regression"].shape == out["denoised"].shape == x.shape
    assert out["pixel_logits"].shape == (2, *shape[1:])


def test_logits_alone_skip_the_decoder_and_heads_share_one_pass():
    d = tiny()
    calls = []
    d.decoder.register_forward_hook(lambda *_: calls.append(1))
    x, t, _ = pair()
    d(x, t)
    assert not calls
    out = d(x, t, heads=("regression", "denoised"))
    assert len(calls) == 1 and set(out) == {"logits", "regression", "denoised"}
    torch.testing.assert_close(out["logits"], d(x, t))


def test_configured_heads_only():
    d = tiny(heads=["regression"])
    assert d.heads == frozenset({"regression"}) and set(d.head_convs) == {"regression"}
    x, t, _ = pair()
    with pytest.raises(ValueError, match="pixel_logits"):
        d(x, t, heads=("regression", "pixel_logits"))
    bare = tiny(heads=[])
    assert bare.heads == frozenset() and not hasattr(bare, "decoder")
    with pytest.raises(ValueError, match="denoised"):
        bare(x, t, heads=("denoised",))


def test_marginal_ignores_x_t_and_pairwise_reads_it():
    x, t, x_t = pair()
    marginal = wake(tiny()).eval()
    a = marginal(x, t, x_t, heads=ALL_HEADS)
    for other in (marginal(x, t, torch.randn_like(x_t), heads=ALL_HEADS), marginal(x, t, None, heads=ALL_HEADS)):
        for name in a:
            torch.testing.assert_close(other[name], a[name], atol=0, rtol=0)
    joint = wake(tiny(pairwise=True)).eval()
    assert not torch.allclose(joint(x, t, x_t), joint(x, t, torch.randn_like(x_t)))
    with pytest.raises(ValueError, match="x_t"):
        joint(x, t)


def test_t_and_label_change_every_head():
    d = wake(tiny(num_classes=3, projection=True)).eval()
    x, t, _ = pair()
    labels = torch.tensor([0, 1, 2, 0])
    base = d(x, t, labels=labels, heads=ALL_HEADS)
    for other in (d(x, torch.rand(4), labels=labels, heads=ALL_HEADS),
                  d(x, t, labels=(labels + 1) % 3, heads=ALL_HEADS)):
        for name, value in base.items():
            assert (other[name] - value).abs().reshape(4, -1).amax(dim=1).min() > 1e-5, name
    null = d(x, t, labels=None)
    torch.testing.assert_close(d(x, t, labels=torch.full((4,), -1)), null)


def test_every_parameter_gets_a_gradient():
    """A loss summing all requested heads must reach every parameter (DDP: no find_unused_parameters).

    The head convs, block-output convs and attention projections are zero-initialised, which blocks the
    gradient behind them at first; two optimiser steps wake them, then every gradient must be non-zero.
    """
    d = tiny(num_classes=3, projection=True, dropout=0.1)
    opt = torch.optim.Adam(d.parameters(), lr=1e-2)
    x, t, _ = pair()
    labels = torch.tensor([0, 1, 2, -1])
    for _ in range(3):
        opt.zero_grad()
        out = d(x, t, labels=labels, heads=ALL_HEADS)
        loss = torch.nn.functional.softplus(-out["logits"]).mean() + out["pixel_logits"].mean()
        loss = loss + (out["regression"] - x).square().mean() + (out["denoised"] + x).square().mean()
        loss.backward()
        opt.step()
    dead = [n for n, p in d.named_parameters() if p.grad is None or not p.grad.any()]
    assert not dead


def test_fast_paths_agree_with_float32():
    d = wake(tiny(num_classes=3, projection=True)).eval()
    x, t, _ = pair()
    labels = torch.tensor([0, 1, 2, -1])
    with torch.no_grad():
        ref = d(x, t, labels=labels, heads=ALL_HEADS)
        d_cl = tiny(num_classes=3, projection=True).to(memory_format=torch.channels_last)
        d_cl.load_state_dict(d.state_dict())
        fast = d_cl.eval()(x.to(memory_format=torch.channels_last), t, labels=labels, heads=ALL_HEADS)
        torch.testing.assert_close(fast, ref, atol=1e-4, rtol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = d(x, t, labels=labels, heads=ALL_HEADS)
        for name, value in ref.items():
            assert ((low[name].float() - value).norm() / value.norm()).item() < 3e-2, name
    small = wake(tiny(**ONE_LEVEL, num_classes=3, projection=True)).eval()
    with torch.no_grad():
        compiled = torch.compile(small, backend="aot_eager", fullgraph=True)  # fullgraph: no graph breaks
        ref = small(x, t, labels=labels, heads=ALL_HEADS)
        torch.testing.assert_close(compiled(x, t, labels=labels, heads=ALL_HEADS), ref, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_inductor_compile_agrees():
    """torch.compile, default (inductor) backend: 1-2 min with a cold kernel cache on 2 busy cores, ~15 s warm."""
    d = wake(tiny(**ONE_LEVEL)).eval()
    x, t, _ = pair()
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(d)(x, t, heads=ALL_HEADS), d(x, t, heads=ALL_HEADS),
                                   atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("overrides", "key"), [
    ({"heads": ["logits"]}, "heads"),
    ({"heads": "regression"}, "heads"),
    ({"projection": True}, "projection"),
    ({"attention_resolutions": (4,)}, "attention_resolutions"),
    ({"num_groups": 3}, "num_groups"),
    ({"z_dim": 100}, "z_dim"),
])
def test_bad_config_names_the_key(overrides, key):
    with pytest.raises(ValueError, match=key):
        build({"type": "unet_discriminator", **TINY, **overrides}, data_shape=(3, 16, 16), where="discriminator")
