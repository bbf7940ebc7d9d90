"""NCSN++ generator: paper sizes, contract, conditioning, gradients and fast paths (tiny configs)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gdiff.nets import build
from gdiff.nets.ncsnpp import NCSNppGenerator

TINY = dict(channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,), z_dim=8, w_dim=16,
            mapping_layers=2)
SHAPE = (3, 16, 16)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def wake_up_(model: nn.Module) -> nn.Module:
    """Give the near-zero-initialised convolutions unit-scale weights, as a trained network has."""
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.weight.abs().max() < 1e-3:
            nn.init.xavier_uniform_(m.weight)
    return model


def tiny(num_classes: int = 0, **kw) -> NCSNppGenerator:
    torch.manual_seed(0)
    return wake_up_(NCSNppGenerator(SHAPE, num_classes=num_classes, **{**TINY, **kw}))


def inputs(batch: int = 4, seed: int = 0, z_dim: int = 8):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, *SHAPE, generator=g), torch.rand(batch, generator=g),
            torch.randn(batch, z_dim, generator=g))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@pytest.mark.parametrize(("config", "paper"), [
    (dict(data_shape=(3, 32, 32), channels=128, channel_mult=(1, 2, 2, 2), mapping_layers=5), 48.4e6),
    (dict(data_shape=(3, 256, 256), channels=64, channel_mult=(1, 1, 2, 2, 4, 4), mapping_layers=4), 39.7e6),
])
def test_paper_parameter_counts(config, paper):
    assert abs(n_params(build({"type": "ncsnpp", **config})) / paper - 1) < 0.02


def test_shape_range_and_zero_initialised_output():
    x, t, z = inputs()
    fresh = NCSNppGenerator(SHAPE, **TINY)
    assert fresh.z_dim == 8
    assert fresh(x, t, z).abs().max() < 1e-3  # the last convolution starts near zero
    out = tiny()(x * 100, t, z)  # large inputs drive tanh into saturation
    assert out.shape == x.shape
    assert out.abs().max() <= 1 and out.abs().max() > 0.9


def test_latent_time_and_label_change_the_output():
    G = tiny(num_classes=3)
    x, t, z = inputs()
    base = G(x, t, z, torch.tensor([0, 1, 2, 0]))
    _, t2, z2 = inputs(seed=1)
    assert rel_err(G(x, t, z2, torch.tensor([0, 1, 2, 0])), base) > 1e-2
    assert rel_err(G(x, t2, z, torch.tensor([0, 1, 2, 0])), base) > 1e-2
    assert rel_err(G(x, t, z, torch.tensor([1, 2, 0, 1])), base) > 1e-2
    null = G(x, t, z, None)
    assert torch.equal(null, G(x, t, z, torch.full((4,), -1)))
    assert torch.equal(null, G(x, t, z, torch.full((4,), 3)))
    assert rel_err(null, base) > 1e-2


def test_every_parameter_gets_a_gradient():
    G = NCSNppGenerator(SHAPE, num_classes=3, dropout=0.1, **TINY)  # real initialisation, near-zero convs
    x, t, z = inputs()
    G(x, t, z, torch.tensor([0, 1, -1, 2])).square().sum().backward()
    for name, p in G.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().max() > 0, name


def test_bad_config_names_the_key():
    with pytest.raises(ValueError, match="attention_resolutions"):
        NCSNppGenerator(SHAPE, **{**TINY, "attention_resolutions": (4,)})
    with pytest.raises(ValueError, match="channel_mult"):
        NCSNppGenerator((3, 12, 12), **{**TINY, "channel_mult": (1, 2, 2, 2), "attention_resolutions": ()})
    with pytest.raises(ValueError, match="bogus"):
        build({"type": "ncsnpp", "bogus": 1}, data_shape=SHAPE)
    with pytest.raises(ValueError, match="z must have shape"):
        x, t, _ = inputs()
        tiny()(x, t, torch.randn(4, 3))


def test_channels_last_matches_plain():
    G = tiny()
    x, t, z = inputs()
    with torch.no_grad():
        plain = G(x, t, z)
        G.to(memory_format=torch.channels_last)
        fast = G(x.to(memory_format=torch.channels_last), t, z)
    assert rel_err(fast, plain) < 1e-5


def test_bf16_autocast_matches_plain():
    G = tiny()
    x, t, z = inputs()
    with torch.no_grad():
        plain = G(x, t, z)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = G(x, t, z)
    assert rel_err(fast, plain) < 3e-2


def test_torch_compile_matches_plain():
    """Whole graph (no breaks) through inductor; a micro config keeps code generation to about a minute."""
    torch.manual_seed(0)
    G = wake_up_(NCSNppGenerator((3, 8, 8), channels=8, channel_mult=(1, 1), num_res_blocks=1,
                                 attention_resolutions=(4,), z_dim=4, w_dim=8, mapping_layers=1))
    x, t, z = torch.randn(2, 3, 8, 8), torch.rand(2), torch.randn(2, 4)
    with torch.no_grad():
        plain = G(x, t, z)
        fast = torch.compile(G, fullgraph=True)(x, t, z)
    assert rel_err(fast, plain) < 1e-4
