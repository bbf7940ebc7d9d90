"""A tiny end-to-end run per variant through the Trainer (recipe -> train -> checkpoint -> samples -> metrics)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from gdiff import recipes
from gdiff.metrics.mixture import mixture_metrics
from gdiff.trainer import Trainer

MIXTURE = {  # two 1-D modes at 0 and 4 (std 0.25): learnt by SIDDM at T = 2 in a few hundred steps
    "data": {"type": "mixture", "dim": 1, "modes_per_side": 2, "spacing": 4.0, "std": 0.25, "per_mode": 2000},
    "diffusion": {"schedule": "cosine", "num_steps": 2},
    "generator": {"type": "toy_generator", "width": 64, "depth": 2, "time_dim": 16},
    "discriminator": {"type": "toy_discriminator", "width": 64, "depth": 2, "time_dim": 16, "pairwise": False,
                      "heads": ["regression"]},
    "objective": {"type": "siddm", "afd_weight": 1.0},
    "optim": {"lr_g": 1e-3, "lr_d": 1e-3, "betas": [0.5, 0.9]},
    "train": {"max_steps": 400, "batch_size": 128, "seed": 0, "ema_decay": 0.99, "log_every": 100, "threads": 1,
              "trackers": []},
    "eval": {"num_samples": 2000},
}
VARIANTS = {
    "eps": ["diffusion={schedule: vp, num_steps: 2, time_sampling: continuous}", "generator.parameterization=eps"],
    "x_prev": ["generator.parameterization=x_prev"],
    "no_z": ["generator.z_dim=0"],
    "x0_discriminator": ["objective={type: siddm, entropy: false, d_input: x0}", "discriminator.heads=[]"],
    "ufogen": ["objective={type: ufogen}", "generator.transition=forward", "discriminator.heads=[]",
               "diffusion.num_steps=4"],
}


def _train(tmp_path, overrides: list[str]) -> Trainer:
    trainer = Trainer(recipes.from_dict(recipes.apply_overrides(MIXTURE, overrides)), tmp_path)
    trainer.train()
    return trainer


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_runs_end_to_end(tmp_path, variant):
    """60 steps through the Trainer: finite losses of the variant's terms, a checkpoint, metrics, samples."""
    trainer = _train(tmp_path, [*VARIANTS[variant], "train.max_steps=60", "train.log_every=30"])
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [30, 60]
    assert all(math.isfinite(v) for r in log for k, v in r.items() if k.startswith(("d/", "g/")))
    expected = {"ufogen": "g/rec", "x0_discriminator": "g/afd_ce"}.get(variant, "g/neg_entropy")
    assert expected in log[-1]
    assert {"frechet", "modes_covered"} <= set(json.loads((tmp_path / "metrics.json").read_text()))
    assert (tmp_path / "generator" / "model.safetensors").is_file()
    samples = trainer.sample(64, steps=1 if variant == "ufogen" else None)
    assert samples.shape == (64, 1) and torch.isfinite(samples).all()


def test_ufogen_learns_both_modes_in_one_network_call(tmp_path):
    trainer = _train(tmp_path, VARIANTS["ufogen"])
    data = trainer.data
    one_step = mixture_metrics(trainer.sample(2000, steps=1), data.points, data.centres, data.mode_std)
    # with the unweighted x0 loss instead (weighting none) the one-step samples collapse onto the data mean,
    # between the modes: 0 modes covered, Frechet 2.4 in the same run (docs/variants.md)
    assert one_step["modes_covered"] == 2 and one_step["frechet"] < 0.3, one_step


def test_wavediff_digits_trains_in_subband_space_and_samples_images(tmp_path):
    tiny_unet = {"channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "attention_resolutions": [],
                 "num_groups": 4, "num_head_channels": 8, "dropout": 0.0}
    recipe = recipes.from_dict({
        "data": {"type": "digits", "transform": "haar"},
        "diffusion": {"schedule": "cosine", "num_steps": 2, "time_sampling": "grid"},
        "generator": {"type": "unet", **tiny_unet, "z_dim": 4, "w_dim": 8, "mapping_layers": 1},
        "discriminator": {"type": "unet_discriminator", **tiny_unet, "pairwise": True, "heads": []},
        "objective": {"type": "wavediff", "r1_gamma": 0.05, "lazy_reg": 2},
        "optim": {"lr_g": 2e-4, "lr_d": 1e-4},
        "train": {"max_steps": 6, "batch_size": 16, "log_every": 3, "threads": 1, "trackers": []},
        "eval": {"num_samples": 16, "batch_size": 16}})
    trainer = Trainer(recipe, tmp_path)
    assert trainer.data.data_shape == (4, 4, 4)
    trainer.train()
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [3, 6] and "g/rec" in log[-1] and "d/r1" in json.dumps(log)
    images = trainer.sample(8)
    assert images.shape == (8, 1, 8, 8) and images.abs().max() <= 1 and images.std() > 0
    assert torch.isfinite(images).all()
