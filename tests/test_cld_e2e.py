"""CLD through the whole library: the shipped recipes train a few steps through gdiff.Trainer and sample data-shaped
x; G reads the state and predicts x0, D reads states; what needs a scalar alpha_bar is refused at build time."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from gdiff import build, load_generator, nets, objectives, recipes
from gdiff.processes import CLD
from gdiff.sampling import ddim, sample
from gdiff.trainer import Trainer

RECIPES = Path(__file__).parent.parent / "recipes"
TINY_TOY = ["generator.width=32", "discriminator.width=32", "generator.fourier_features=4",
            "discriminator.fourier_features=4"]
TINY_UNET = ["generator.channels=8", "discriminator.channels=8", "generator.num_groups=4",
             "discriminator.num_groups=4", "generator.w_dim=8", "generator.z_dim=4", "generator.num_head_channels=8",
             "discriminator.num_head_channels=8"]
SHORT = ["train.max_steps=4", "train.log_every=2", "train.batch_size=16", "train.trackers=[]", "train.threads=1",
         "eval.num_samples=32", "eval.batch_size=32"]


def _recipe(name: str, overrides: list[str]) -> recipes.Recipe:
    return recipes.load(RECIPES / f"{name}.yaml", overrides)


@pytest.mark.parametrize(("name", "tiny", "shape", "key"), [
    ("mog25_siddm_cld", TINY_TOY, (2,), "g/afd_ce"),
    ("mog25_ddgan_cld", TINY_TOY, (2,), "d/r1"),
    ("digits_siddm_cld", TINY_UNET, (1, 8, 8), "d/denoise"),
])
def test_recipe_trains_and_samples_data(tmp_path, name, tiny, shape, key):
    trainer = Trainer(_recipe(name, [*tiny, *SHORT]), tmp_path)
    assert isinstance(trainer.schedule, CLD)
    trainer.train()
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4] and key in json.dumps(log)
    assert all(math.isfinite(v) for r in log for k, v in r.items() if k.startswith(("d/", "g/")))
    samples = trainer.sample(8)
    assert samples.shape == (8, *shape) and torch.isfinite(samples).all() and samples.std() > 0
    exported = load_generator(tmp_path / "generator")  # the folder alone rebuilds the wider generator
    assert torch.equal(exported.sample(8, seed=3), exported.sample(8, seed=3))
    assert exported.sample(8, seed=3).shape == (8, *shape)


def test_networks_read_the_state_and_predict_x0():
    built = build.build(_recipe("mog25_siddm_cld", TINY_TOY))
    G, D, cld = built.generator, built.discriminator, built.schedule
    u_t = cld.prior_sample(5, (2,))
    assert G(u_t, torch.full((5,), 0.5), torch.randn(5, G.z_dim)).shape == (5, 2)
    assert D(u_t, torch.full((5,), 0.5), heads=("regression",))["regression"].shape == (5, 4)
    with pytest.raises(RuntimeError):  # a data-shaped x_t is not what this G reads
        G(torch.randn(5, 2), torch.full((5,), 0.5), torch.randn(5, G.z_dim))


def test_sampler_returns_x0_of_the_last_step():
    """The chain ends at s = 0, where the posterior's x part is G's x0 prediction exactly."""
    cld = CLD(num_steps=2)
    G = nets.build({"type": "toy_generator", "width": 8, "depth": 1, "time_dim": 4, "z_dim": 0,
                    "input_shape": [4]}, (2,), 0, "generator")
    u_T = cld.prior_sample(6, (2,), generator=torch.Generator().manual_seed(0))
    x = sample(G, cld, u_T, generator=torch.Generator().manual_seed(1))
    assert x.shape == (6, 2)
    u_half = cld.posterior_sample(G(u_T, torch.ones(6), torch.zeros(6, 0)), u_T, 0.5, 1.0,
                                  noise=torch.randn(6, 4, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(x, G(u_half, torch.full((6,), 0.5), torch.zeros(6, 0)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="ddim.*cld"):
        ddim(G, cld, u_T)


@pytest.mark.parametrize(("overrides", "pattern"), [
    (["generator.parameterization=eps"], r"no scalar alpha_bar.*parameterization eps"),
    (["generator.parameterization=x_prev"], r"no scalar alpha_bar.*parameterization x_prev"),
    (["objective={type: ufogen}", "generator.transition=forward", "discriminator.heads=[]"],
     r"no scalar alpha_bar.*transition forward"),
    (["objective={type: gaussian}", "discriminator={type: none}", "generator.z_dim=0"],
     r"cld has no scalar signal fraction.*Gaussian baseline"),
    (["objective={type: terms, terms: [{term: adversarial, pairwise: false}, "
      "{term: reconstruction, weighting: snr}]}", "discriminator.heads=[]"], r"snr weighting reads alpha_bar"),
    (["objective={type: siddm, entropy: false, d_input: x0}", "discriminator.heads=[]"], r"d_input x0"),
])
def test_what_needs_a_scalar_process_is_refused_at_build_time(overrides, pattern):
    with pytest.raises(ValueError, match=pattern):
        build.build(_recipe("mog25_siddm_cld", [*TINY_TOY, *overrides]))


def test_phase_space_objectives_call_only_the_process():
    """A CLD objective step on a toy pair: D sees states, the AFD terms read the state transition."""
    built = build.build(_recipe("mog25_siddm_cld", TINY_TOY))
    obj = objectives.siddm(afd_weighting="inverse_beta")
    x0 = torch.randn(16, 2)
    losses = obj.generator_loss(built.generator, built.discriminator, built.schedule, x0)
    assert math.isfinite(losses.total.item()) and "g/afd_ce" in losses.parts


def test_cld_steps_and_sampler_read_no_tensor_on_the_host():
    """On the meta device any host read raises: CLD's D and G steps (DDGAN with R1, SIDDM with whitened AFD and
    denoising) and the sampler run through, so they never synchronise with a GPU; the checked process does read."""
    from gdiff.nets.toy import ToyDiscriminator, ToyGenerator

    cld = CLD(num_steps=2)
    G = ToyGenerator((2,), width=8, depth=1, time_dim=4, input_shape=(4,)).to("meta")
    pairwise = ToyDiscriminator((4,), width=8, depth=1, time_dim=4, pairwise=True).to("meta")
    marginal = ToyDiscriminator((4,), width=8, depth=1, time_dim=4, pairwise=False,
                                heads=("regression", "denoised")).to("meta")
    x = torch.empty(8, 2, device="meta")
    assert sample(G, cld, cld.prior_sample(8, (2,), device="meta")).shape == (8, 2)
    for objective, D in ((objectives.ddgan(r1_gamma=0.1, lazy_reg=1), pairwise),
                         (objectives.siddm(afd_weighting="inverse_beta", denoise_weight=1.0), marginal)):
        objective.discriminator_loss(G, D, cld, x).total.backward()
        objective.generator_loss(G, D, cld, x).total.backward()
    s, t = cld.unchecked().sample_times(8, device="meta")
    with pytest.raises(RuntimeError, match="meta"):
        cld.q_sample(x, t)
