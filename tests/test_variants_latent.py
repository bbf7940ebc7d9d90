"""``z_dim: 0`` (DDGAN's "no z" ablation): every generator builds without a latent and is deterministic."""

from __future__ import annotations

import pytest
import torch

from gdiff.nets import build
from gdiff.processes import Schedule
from gdiff.sampling import draw_latent, sample

SECTIONS = {
    "toy_generator": ({"type": "toy_generator", "width": 16, "depth": 2, "z_dim": 0}, (2,)),
    "ncsnpp": ({"type": "ncsnpp", "channels": 16, "channel_mult": (1, 2), "num_res_blocks": 1,
                "attention_resolutions": (4,), "z_dim": 0, "w_dim": 8, "mapping_layers": 1}, (3, 8, 8)),
    "unet": ({"type": "unet", "channels": 16, "channel_mult": (1, 2), "num_res_blocks": 1,
              "attention_resolutions": (4,), "num_head_channels": 8, "num_groups": 4, "dropout": 0.0, "z_dim": 0,
              "w_dim": 8, "mapping_layers": 1}, (3, 8, 8)),
}


def _wake(G: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():  # zero-initialised output layers would make every output 0
        for p in G.parameters():
            if not p.any():
                p.normal_(0.0, 0.2)
    return G


@pytest.mark.parametrize("kind", sorted(SECTIONS))
def test_no_latent_generator_is_deterministic_and_has_no_mapping(kind):
    section, shape = SECTIONS[kind]
    torch.manual_seed(0)
    G = _wake(build(section, shape, where="generator")).eval()
    assert G.z_dim == 0
    names = [name for name, _ in G.named_parameters()]
    assert not any("mapping" in n or ".style." in n for n in names), names
    x_t, t = torch.randn(3, *shape), torch.rand(3)
    z = draw_latent(G, 3, x_t.device)
    assert z.shape == (3, 0)
    out = G(x_t, t, z)
    assert out.shape == x_t.shape and out.std() > 0
    torch.testing.assert_close(G(x_t, t, draw_latent(G, 3, x_t.device)), out)  # no randomness left in G
    out.square().mean().backward()
    assert all(p.grad is not None for p in G.parameters() if p.requires_grad)


def test_no_latent_sampler_is_deterministic_given_x_T():
    section, shape = SECTIONS["toy_generator"]
    torch.manual_seed(0)
    G = build(section, shape, where="generator").eval()
    schedule = Schedule.cosine(1)  # one step: no posterior noise, so the chain is G alone
    x_T = torch.randn(5, *shape)
    a = sample(G, schedule, x_T, generator=torch.Generator().manual_seed(0))
    b = sample(G, schedule, x_T, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kind", sorted(SECTIONS))
def test_negative_z_dim_names_the_key(kind):
    section, shape = SECTIONS[kind]
    with pytest.raises(ValueError, match="z_dim"):
        build({**section, "z_dim": -1}, shape, where="generator")
