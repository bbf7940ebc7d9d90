"""SIDDM's ADM-style U-Net generator (``unet``) on tiny configurations."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from gdiff.nets import build
from gdiff.nets.unet import UNetGenerator
from tests.nets.common import wake

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
TINY = {"channels": 8, "channel_mult": (1, 2), "num_res_blocks": 1, "attention_resolutions": (8,),
        "num_head_channels": 8, "num_groups": 4, "dropout": 0.0, "z_dim": 6, "w_dim": 16, "mapping_layers": 2}
ONE_LEVEL = {"channel_mult": (1,), "attention_resolutions": (16,)}  # for compile: short tracing


def tiny(data_shape=(3, 16, 16), **overrides) -> UNetGenerator:
    torch.manual_seed(0)
    return UNetGenerator(data_shape, **{**TINY, **overrides})


def inputs(g: UNetGenerator, shape=(3, 16, 16), batch=4):
    return torch.randn(batch, *shape), torch.rand(batch), torch.randn(batch, g.z_dim)


@pytest.mark.parametrize(("shape", "overrides"), [
    ((1, 32, 32), {"attention_resolutions": (16,)}),
    ((3, 32, 32), {"channel_mult": (1, 2, 2), "attention_resolutions": (16, 8), "num_classes": 10}),
    ((3, 64, 64), {"channel_mult": (1, 1, 2, 2), "num_res_blocks": 2, "num_classes": 5, "tanh_output": False}),
    ((1, 16, 16), {"num_head_channels": None, "num_heads": 2}),
])
def test_output_shape(shape, overrides):
    g = wake(tiny(shape, **overrides))
    x, t, z = inputs(g, shape, batch=2)
    labels = torch.tensor([0, -1]) if overrides.get("num_classes") else None
    assert g(x, t, z, labels).shape == x.shape


def test_starts_at_zero_and_tanh_bounds_output():
    g = tiny()
    x, t, z = inputs(g)
    assert torch.equal(g(x, t, z), torch.zeros_like(x))  # zero-initialised final conv
    out = wake(g)(10 * x, t, z)
    assert out.abs().max() <= 1.0 and out.std() > 0.05
    assert wake(tiny(tanh_output=False))(10 * x, t, z).abs().max() > 1.0


def test_z_t_and_label_change_output():
    g = wake(tiny(num_classes=3)).eval()
    x, t, z = inputs(g)
    labels = torch.tensor([0, 1, 2, 0])
    base = g(x, t, z, labels)
    for other in (g(x, t, torch.randn_like(z), labels), g(x, torch.rand(4), z, labels),
                  g(x, t, z, (labels + 1) % 3)):
        assert (other - base).abs().amax(dim=(1, 2, 3)).min() > 1e-4  # every sample changes


def test_labels_none_is_the_null_label():
    g = wake(tiny(num_classes=3)).eval()
    x, t, z = inputs(g)
    null = g(x, t, z, None)
    torch.testing.assert_close(g(x, t, z, torch.full((4,), -1)), null)
    assert not torch.allclose(g(x, t, z, torch.zeros(4, dtype=torch.long)), null)


def test_every_parameter_gets_a_gradient():
    """A loss of G's output must reach every parameter (DDP needs no find_unused_parameters).

    Zero-initialised layers (final conv, last conv of each residual block, attention output projection)
    block the gradient to everything behind them at initialisation: step 1 moves the final conv, step 2
    the block-output convs and projections; from the third backward pass every gradient must be non-zero.
    """
    g = tiny(num_classes=3, dropout=0.1)
    opt = torch.optim.Adam(g.parameters(), lr=1e-2)
    x, t, z = inputs(g)
    target, labels = torch.randn_like(x), torch.tensor([0, 1, 2, -1])
    for _ in range(3):
        opt.zero_grad()
        (g(x, t, z, labels) - target).square().mean().backward()
        opt.step()
    dead = [n for n, p in g.named_parameters() if p.grad is None or not p.grad.any()]
    assert not dead


def test_fast_paths_agree_with_float32():
    g = wake(tiny(num_classes=3)).eval()
    x, t, z = inputs(g)
    labels = torch.tensor([0, 1, 2, -1])
    with torch.no_grad():
        ref = g(x, t, z, labels)
        g_cl = tiny(num_classes=3).to(memory_format=torch.channels_last)
        g_cl.load_state_dict(g.state_dict())
        torch.testing.assert_close(g_cl.eval()(x.to(memory_format=torch.channels_last), t, z, labels), ref,
                                   atol=1e-5, rtol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = g(x, t, z, labels).float()
        assert ((low - ref).norm() / ref.norm()).item() < 3e-2
    small = wake(tiny(**ONE_LEVEL, num_classes=3)).eval()
    with torch.no_grad():
        compiled = torch.compile(small, backend="aot_eager", fullgraph=True)  # fullgraph: no graph breaks
        torch.testing.assert_close(compiled(x, t, z, labels), small(x, t, z, labels), atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_inductor_compile_agrees():
    """torch.compile, default (inductor) backend: 1-2 min with a cold kernel cache on 2 busy cores, ~15 s warm."""
    g = wake(tiny(**ONE_LEVEL)).eval()
    x, t, z = inputs(g)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(g)(x, t, z), g(x, t, z), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("overrides", "key"), [
    ({"channel_mult": ()}, "channel_mult"),
    ({"channel_mult": (1,) * 6}, "channel_mult"),  # 16 px cannot be halved 5 times
    ({"attention_resolutions": (5,)}, "attention_resolutions"),
    ({"num_groups": 3}, "num_groups"),
    ({"num_head_channels": 3}, "num_head_channels"),
    ({"num_head_channels": None, "num_heads": 3}, "num_heads"),
    ({"dropout": 1.0}, "dropout"),
    ({"z_dim": -1}, "z_dim"),
    ({"num_res_blocks": 0}, "num_res_blocks"),
    ({"data_shape": (3, 16, 8)}, "data_shape"),
    ({"colour": 3}, "colour"),
])
def test_bad_config_names_the_key(overrides, key):
    section = {"type": "unet", **TINY, **overrides}
    with pytest.raises(ValueError, match=key):
        build(section, data_shape=(3, 16, 16), where="generator")


@pytest.mark.parametrize(("recipe", "shape", "num_classes"), [("cifar10_siddm.yaml", (3, 32, 32), 0),
                                                             ("imagenet64_siddm.yaml", (3, 64, 64), 1000)])
def test_recipe_networks_build(recipe, shape, num_classes):
    """The paper-table networks of the recipes are valid (built on the meta device: no memory, no time)."""
    cfg = yaml.safe_load((RECIPES / recipe).read_text())
    with torch.device("meta"):
        g = build(cfg["generator"], data_shape=shape, num_classes=num_classes, where="generator")
        d = build(cfg["discriminator"], data_shape=shape, num_classes=num_classes, where="discriminator")
    assert g.z_dim == 100 and not d.pairwise and {"regression", "denoised"} <= d.heads
