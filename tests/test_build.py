"""One build path: broken recipes fail identically in --dry-run and in training, before anything is written;
the checks run at build time and nowhere in the step; the public names do not clash."""

from __future__ import annotations

import importlib

import pytest
import torch

from gdiff import recipes
from gdiff.build import build
from gdiff.train import main as train_main

TINY_STDDEV_D = "discriminator={type: ddgan_small, channels: 8, t_emb_dim: 16, pairwise: true}"
# recipe, overrides, words the one error line must contain
BROKEN = {
    "transition/objective": ("mog25_ufogen", ["generator.transition=posterior"], "generator.transition: forward"),
    "stddev group": ("digits_ddgan", [TINY_STDDEV_D, "train.batch_size=18"], "minibatch-stddev groups of 4"),
    "eps on cosine": ("mog25_siddm_eps", ["diffusion.schedule=cosine"], "parameterization eps needs alpha_bar"),
    "heads missing": ("mog25_siddm", ["discriminator.heads=[]"], "needs discriminator heads ['regression']"),
    "heads unused": ("digits_ddgan", ["discriminator.heads=[regression]"], "never used by objective"),
    "no D for a GAN": ("mog25_siddm", ["discriminator={type: none}"], "discriminator.type must not be none"),
    "x_prev with x0 D": ("mog25_siddm_x0_disc", ["generator.parameterization=x_prev"], "needs an x0 prediction"),
    "batch over processes": ("mog25_siddm", ["train.micro_batch=3", "train.batch_size=512"], "train.micro_batch"),
    "image metric on points": ("mog25_siddm", ["eval.metrics=[fid]"], "are image metrics"),
    "offline weights missing": ("digits_siddm", ["eval.metrics=[fid]", "eval.inception_weights=/no/pt.pth"],
                                "/no/pt.pth not found"),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_broken_recipes_fail_the_same_in_dry_run_and_training(case, tmp_path, capsys):
    name, overrides, words = BROKEN[case]
    args = [f"recipes/{name}.yaml", *overrides, "train.trackers=[]", "--run-dir", str(tmp_path / "run")]
    lines = []
    for extra in (["--dry-run"], []):
        assert train_main([*args, *extra]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and err.startswith("error: ") and words in err, err
        lines.append(err)
    assert lines[0] == lines[1]
    assert not (tmp_path / "run").exists(), "nothing may be written for a broken recipe"


def test_a_good_recipe_builds_with_its_geometry():
    built = build(recipes.load("recipes/mog25_siddm.yaml", ["train.batch_size=64", "train.micro_batch=16"]), 2)
    assert (built.local_batch, built.micro_batch, built.data_shape) == (32, 16, (2,))
    assert built.generator_config().data_map["type"] == "affine"


def test_the_training_step_checks_nothing(monkeypatch):
    """The build-time checks are not called again by a training step or the sampler."""
    from gdiff.objectives.base import Objective
    from gdiff.parameterization import Parameterization
    from gdiff.sampling import sample

    built = build(recipes.load("recipes/mog25_siddm_eps.yaml", ["data.per_mode=50"]))
    calls = []
    monkeypatch.setattr(Objective, "check_generator", lambda *a: calls.append("check_generator"))
    monkeypatch.setattr(Objective, "check", lambda *a: calls.append("check"))
    monkeypatch.setattr(Parameterization, "check", lambda *a: calls.append("parameterization.check"))
    monkeypatch.setattr("gdiff.lr_schedule.check", lambda *a, **k: calls.append("lr_schedule.check"))
    x0 = built.data.to_model(built.data.raw[:32])
    built.objective.discriminator_loss(built.generator, built.discriminator, built.schedule, x0)
    built.objective.generator_loss(built.generator, built.discriminator, built.schedule, x0)
    from gdiff.lr_schedule import learning_rate

    learning_rate(1e-4, 5, 10, "cosine")
    sample(built.generator, built.schedule, torch.randn(4, 2))
    assert calls == []


def test_public_names_survive_importing_the_command_line_modules():
    import gdiff

    for module in ("gdiff.sample", "gdiff.train", "gdiff.build", "gdiff.export"):
        importlib.import_module(module)
    assert callable(gdiff.sampling.sample) and callable(gdiff.load_generator) and callable(gdiff.build.build)
    assert set(gdiff.__all__).isdisjoint({"sample", "train", "build", "export"})


def test_step_index_conditioning_needs_its_grid():
    """time_input index (converted DDGAN generators) embeds integer steps of a T-step grid."""
    base = ["generator.channels=8", "generator.channel_mult=[1, 1]", "generator.num_res_blocks=1",
            "generator.attention_resolutions=[]", "generator.time_input=index"]
    recipe = recipes.load("recipes/cifar10_ddgan.yaml", [*base, "generator.time_steps=4"])
    assert build(recipe, stand_in_data=True, dry_run=True).schedule.num_steps == 4
    with pytest.raises(ValueError, match="diffusion.num_steps to 3"):
        build(recipes.load("recipes/cifar10_ddgan.yaml", [*base, "generator.time_steps=3"]), dry_run=True)
