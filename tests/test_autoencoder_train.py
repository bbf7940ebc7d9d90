"""gdiff's KL autoencoder trainer: it learns, resumes exactly, exports a folder a latent recipe loads, and
reports bad recipes as one error line."""

from __future__ import annotations

import json

import pytest
import torch

from gdiff.autoencoders import load
from gdiff.autoencoders.train import AutoencoderTrainer, load_recipe, main

pytest.importorskip("diffusers")

RECIPE = """
data: {type: digits}
autoencoder: {block_out_channels: [8, 16], latent_channels: 2, layers_per_block: 1, norm_num_groups: 4,
              mid_block_add_attention: false}
loss: {kl_weight: 1.0e-6, adversarial_weight: 0.1, adversarial_start: 2, disc_channels: 8, disc_layers: 1}
optim: {lr: 1.0e-3}
train: {max_steps: 4, batch_size: 16, log_every: 1, threads: 1, num_workers: 0}
"""


@pytest.fixture()
def recipe_file(tmp_path):
    path = tmp_path / "ae.yaml"
    path.write_text(RECIPE)
    return path


def _weights(trainer):
    return {k: v.clone() for k, v in trainer.acc.unwrap_model(trainer.model).state_dict().items()}


def test_resume_is_exact_and_the_export_loads(recipe_file, tmp_path):
    straight = AutoencoderTrainer(load_recipe(recipe_file), tmp_path / "a")
    metrics = straight.train()
    split = AutoencoderTrainer(load_recipe(recipe_file, ["train.max_steps=2"]), tmp_path / "b")
    split.train()
    resumed = AutoencoderTrainer(load_recipe(recipe_file), tmp_path / "b")
    resumed.train()
    assert resumed.step == 4
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the adversarial term (from step 2) included
    exported = load(tmp_path / "a" / "autoencoder")
    assert exported.latent_shape((1, 8, 8)) == (2, 4, 4)
    assert exported.module.config.scaling_factor == pytest.approx(metrics["scaling_factor"])
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and "d" in log[-1] and "d" not in log[0]


def test_reconstruction_improves_with_training(recipe_file, tmp_path):
    """Loss of the first logged window against the last, 60 steps at lr 3e-3: the autoencoder learns."""
    trainer = AutoencoderTrainer(load_recipe(recipe_file, ["train.max_steps=60", "train.log_every=10",
                                                           "loss.adversarial_weight=0", "optim.lr=3.0e-3"]),
                                 tmp_path)
    trainer.train()
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert log[-1]["rec"] < 0.6 * log[0]["rec"]


@pytest.mark.parametrize("override, words", [("loss.reconstruction=l3", "loss.reconstruction"),
                                             ("autoencoder.norm_num_groups=3", "norm_num_groups"),
                                             ("data.transform=haar", "without transform"),
                                             ("train.batch_size=0", "train.batch_size")])
def test_bad_recipes_are_one_error_line(recipe_file, tmp_path, capsys, override, words):
    code = main([str(recipe_file), override, "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and words in err[0]
    assert not (tmp_path / "run").exists()
