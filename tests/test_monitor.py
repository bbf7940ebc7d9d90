"""What a run makes of its EMA generator: FID during training with offline weights, pictures that show the data."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from gdiff import load_recipe, monitor
from gdiff.eval import fidelity, weights
from gdiff.trainer import Trainer

ROOT = Path(__file__).parents[1]
DIGITS = {
    "data": {"type": "digits"},
    "diffusion": {"schedule": "cosine", "num_steps": 2},
    "generator": {"type": "unet", "channels": 8, "channel_mult": [1], "num_res_blocks": 1,
                  "attention_resolutions": [], "num_head_channels": None, "num_heads": 1, "dropout": 0.0,
                  "num_groups": 4, "z_dim": 0},
    "discriminator": {"type": "none"},
    "objective": {"type": "gaussian"},
}


class PooledFeatures(FeatureExtractorBase):
    """Stands in for Inception-v3: every requested feature is the 4 x 4 average pool of the image [B, 48]."""

    def forward(self, x):
        pooled = torch.nn.functional.adaptive_avg_pool2d(x.float() / 255, 4).flatten(1)
        return tuple(pooled for _ in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return ("64", "192", "768", "2048", "logits_unbiased", "logits")


def test_fid_during_training_reads_the_offline_weights_of_the_recipe(tmp_path, monkeypatch):
    monkeypatch.setenv("GDIFF_CACHE_DIR", str(tmp_path / "cache"))
    offline = tmp_path / "pt_inception-2015-12-05.safetensors"
    save_file({"conv.weight": torch.ones(2, 2)}, str(offline))
    seen = []

    def build_extractor(name, features, path, device="cpu", verbose=False):
        seen.append((name, path, sorted(weights.load_state_dict(path))))  # read as gdiff reads weights
        return PooledFeatures(name, features).eval()

    monkeypatch.setattr(fidelity, "build_extractor", build_extractor)
    raw = {**DIGITS, "train": {"max_steps": 4, "batch_size": 16, "log_every": 2, "trackers": [], "threads": 1},
           "eval": {"metrics": ["fid"], "every": 2, "num_samples": 40, "batch_size": 16,
                    "inception_weights": str(offline), "best": "fid"}}
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(json.dumps(raw))
    Trainer(load_recipe(recipe_file), tmp_path / "run").train()
    assert seen and all(s == ("inception-v3-compat", str(offline), ["conv.weight"]) for s in seen)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["eval/fid"] > 0 for r in log if "eval/fid" in r] == [True]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["fid"] > 0
    assert (tmp_path / "run" / "generator_best" / "model.safetensors").is_file()


def test_the_scatter_shows_every_mode_of_the_data(tmp_path, monkeypatch):
    drawn = {}

    def scatter(real, fake, path, title="", **kwargs):
        drawn.update(real=real, fake=fake)
        Path(path).write_bytes(b"png")

    monkeypatch.setattr("gdiff.plots.scatter_samples", scatter)
    recipe = load_recipe(ROOT / "recipes" / "mog25_siddm.yaml",
                         ["train.max_steps=2", "train.batch_size=32", "train.trackers=[]", "eval.num_samples=100"])
    trainer = Trainer(recipe, tmp_path)
    trainer.train()
    assert (tmp_path / "samples" / "step_000000002.png").is_file()
    assert drawn["fake"].shape == (monitor.PICTURE_POINTS, 2) and drawn["real"].shape == (monitor.REAL_POINTS, 2)
    centres = trainer.data.centres
    nearest = torch.cdist(drawn["real"], centres).argmin(1)
    assert nearest.unique().numel() == 25, "the real layer is a random subset of the data, not its first mode"
