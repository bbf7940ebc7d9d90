"""WaveDiff's networks: the wavelet-aware NCSN++ generator and the 3-block discriminator."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from gdiff.nets import build
from gdiff.nets.wavelet_ncsnpp import _merge, _split
from gdiff.wavelet import haar

TINY = {"type": "wavelet_ncsnpp", "channels": 16, "channel_mult": [1, 1, 2], "num_res_blocks": 1,
        "attention_resolutions": [], "z_dim": 4, "w_dim": 8, "mapping_layers": 1}
SHAPE = (4, 8, 8)  # the subbands of 1 x 16 x 16 images


def _wake(G: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(1)
    with torch.no_grad():
        for p in G.parameters():
            if p.abs().max() < 1e-3:
                p.normal_(0.0, 0.1)
    return G


def test_split_and_merge_are_inverse():
    h = torch.randn(2, 5, 6, 4, dtype=torch.float64)
    low, high = _split(h)
    torch.testing.assert_close(low, F.avg_pool2d(h, 2))
    torch.testing.assert_close(_merge(low, high), h, rtol=0, atol=1e-14)


def test_shapes_gradients_and_no_latent():
    torch.manual_seed(0)
    G = _wake(build(TINY, SHAPE, where="generator"))
    x, t, z = torch.randn(3, *SHAPE), torch.rand(3), torch.randn(3, 4)
    out = G(x, t, z)
    assert out.shape == x.shape and out.abs().max() <= 1
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters())
    G0 = build({**TINY, "z_dim": 0}, SHAPE, where="generator")
    assert G0(x, t, torch.zeros(3, 0)).shape == x.shape


def test_down_blocks_see_the_low_band_and_up_blocks_get_the_encoder_high_bands():
    """Frequency-aware resampling: enc_down reads the 2 x 2 means of its level's features; with equal widths
    (no projection) the input of the matching dec_up has exactly the high bands the encoder split off."""
    torch.manual_seed(0)
    G = _wake(build(TINY, SHAPE, where="generator")).eval()
    seen = {}
    G.enc_blocks[0][-1].register_forward_hook(lambda m, a, out: seen.__setitem__("features", out))
    G.enc_down[0].register_forward_pre_hook(lambda m, a: seen.__setitem__("down_in", a[0]))
    G.dec_up[-1].register_forward_pre_hook(lambda m, a: seen.__setitem__("up_in", a[0]))
    G.mid[0].register_forward_pre_hook(lambda m, a: seen.__setitem__("mid_in", a[0]))
    G(torch.randn(2, *SHAPE), torch.rand(2), torch.randn(2, 4))
    features = seen["features"]  # level 0: 16 channels at 8 x 8
    torch.testing.assert_close(seen["down_in"], F.avg_pool2d(features, 2))
    assert seen["up_in"].shape == features.shape
    torch.testing.assert_close(haar(seen["up_in"])[:, 16:], haar(features)[:, 16:])
    assert seen["mid_in"].shape[-1] == SHAPE[-1] // 8  # bottom level at 2 x 2, bottleneck at 1 x 1


def test_projection_when_widths_differ_and_config_errors():
    G = build({**TINY, "channel_mult": [1, 2]}, SHAPE, where="generator")
    assert isinstance(G.high_proj[0], torch.nn.Conv2d) and G.high_proj[0].in_channels == 3 * 16
    with pytest.raises(ValueError, match="even"):
        build({**TINY, "channel_mult": [1, 2, 2, 2]}, SHAPE, where="generator")  # bottom 1 x 1
    with pytest.raises(ValueError, match="two levels"):
        build({**TINY, "channel_mult": [1]}, SHAPE, where="generator")


def test_wavediff_discriminator_has_three_blocks_for_16_px_subbands():
    D = build({"type": "wavediff_small", "channels": 8, "t_emb_dim": 16, "pairwise": True}, (12, 16, 16),
              where="discriminator")
    assert len(D.blocks) == 3
    logits = D(torch.randn(4, 12, 16, 16), torch.rand(4), torch.randn(4, 12, 16, 16))
    assert logits.shape == (4,)
    with pytest.raises(ValueError, match="divisible by 4"):
        build({"type": "wavediff_small", "channels": 8}, (12, 6, 6), where="discriminator")


def test_cifar10_wavediff_recipe_has_the_authors_settings_in_subband_space():
    from pathlib import Path

    from gdiff import recipes

    recipe = recipes.load(Path(__file__).resolve().parents[1] / "recipes" / "cifar10_wavediff.yaml")
    assert recipe.data["transform"] == "haar" and recipe.diffusion == {
        "schedule": "vp", "num_steps": 4, "beta_min": 0.1, "beta_max": 20.0}
    g, d = recipe.generator, recipe.discriminator
    assert (g["type"], g["channels"], g["channel_mult"], g["num_res_blocks"], g["attention_resolutions"],
            g["z_dim"], g["mapping_layers"]) == ("ncsnpp", 128, [1, 2, 2], 2, [], 100, 5)
    assert (d["type"], d["channels"], d["pairwise"]) == ("wavediff_small", 64, True)
    assert recipe.objective == {"type": "wavediff", "r1_gamma": 0.02, "lazy_reg": 15, "reconstruction_weight": 1.0,
                                "reconstruction": "l1"}
    assert (recipe.optim.lr_g, recipe.optim.lr_d, tuple(recipe.optim.betas)) == (1.6e-4, 1.25e-4, (0.5, 0.9))
    assert (recipe.train.batch_size, recipe.train.max_steps, recipe.train.ema_decay) == (256, 1800 * 195, 0.9999)
    G, D = build(g, (12, 16, 16), where="generator"), build(d, (12, 16, 16), where="discriminator")  # subbands
    assert G.conv_in.in_channels == 12 and D.conv_in.in_channels == 24
