"""``python -m gdiff.sample`` and ``gdiff.load_generator`` on an exported class-conditional generator.

The generator is a small U-Net trained for 300 steps as a Gaussian denoiser on the 8 x 8 digits with their
labels, exported as a generator folder (config.json + model.safetensors) only; gdiff's digit classifier checks that the
samples show the digits their labels ask for.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gdiff import data, nets, objectives, recipes
from gdiff.build import generator_config
from gdiff.eval.digit_classifier import classify_digits, digit_classifier
from gdiff.export import ExportedGenerator, load_generator
from gdiff.processes import Schedule
from gdiff.sample import main as sample_main
from gdiff.sample import to_uint8

ROOT = Path(__file__).parents[1]
RECIPE = {
    "data": {"type": "digits", "conditional": True},
    "diffusion": {"schedule": "cosine", "num_steps": 8},
    "generator": {"type": "unet", "channels": 16, "channel_mult": [1, 2], "num_res_blocks": 1,
                  "attention_resolutions": [], "num_head_channels": None, "num_heads": 1, "dropout": 0.0,
                  "num_groups": 4, "z_dim": 0},
    "discriminator": {"type": "none"},
    "objective": {"type": "gaussian"},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """An exported conditional digits denoiser (a save_pretrained folder, nothing else)."""
    recipe = recipes.from_dict(RECIPE)
    source = data.build(recipe.data)
    torch.manual_seed(0)
    G = nets.build(recipe.generator, source.data_shape, source.num_classes, "generator")
    schedule, objective = Schedule.from_config(recipe.diffusion), objectives.from_config(recipe.objective)
    opt = torch.optim.Adam(G.parameters(), lr=3e-3)
    x, y = source.to_model(source.raw), source.labels
    for _ in range(300):
        idx = torch.randint(0, len(x), (64,))
        loss = objective.generator_loss(G, None, schedule, x[idx], y[idx]).total
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = tmp_path_factory.mktemp("exported")
    config = generator_config(recipe, source.data_shape, source.num_classes, source.data_map)
    ExportedGenerator(config, G).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return digit_classifier(data.build({"type": "digits"}), tmp_path_factory.mktemp("cache"))[1]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "gdiff.sample", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_labels_decide_the_digits(run_dir, classifier, tmp_path):
    one = tmp_path / "threes.npz"
    proc = run(str(run_dir), "--num", "40", "--labels", "3", "--out", str(one), "--steps", "20",
               "--sampler", "ddim", "--seed", "2", "--batch-size", "16")
    assert "NFE 20 (ddim)" in proc.stdout and "images/s" in proc.stdout
    saved = np.load(one)
    assert saved["samples"].shape == (40, 1, 8, 8) and saved["samples"].dtype == np.float32
    assert (saved["labels"] == 3).all()
    assert (classify_digits(classifier, torch.from_numpy(saved["samples"]))[:, 0] == 3).float().mean() > 0.8

    gen = load_generator(run_dir)  # the same from Python, without the training state
    same = gen.sample(40, labels=3, steps=20, seed=2, batch_size=16, sampler="ddim")
    assert torch.equal(same, torch.from_numpy(saved["samples"]))
    labels = gen.labels(100)  # default: every class in turn
    assert labels.tolist() == [i % 10 for i in range(100)]
    read = classify_digits(classifier, gen.sample(100, labels, batch_size=30))[:, 0]
    assert (read == labels).float().mean() > 0.8


def test_grid_and_png_folder_hold_the_pixels_of_the_samples(run_dir, tmp_path):
    common = [str(run_dir), "--num", "12", "--labels", "0,7", "--seed", "5"]
    run(*common, "--out", str(tmp_path / "grid.png"))
    run(*common, "--out", str(tmp_path / "pngs"))
    samples = load_generator(run_dir).sample(12, labels=[0, 7], seed=5)
    pixels = to_uint8(samples)[:, 0].numpy()
    files = sorted((tmp_path / "pngs").iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(12)]
    assert all(np.array_equal(np.asarray(Image.open(f)), p) for f, p in zip(files, pixels, strict=True))
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.shape == (3 * 9 + 1, 4 * 9 + 1, 3)  # 12 images in rows of ceil(sqrt(12)) = 4, 1-pixel padding
    assert np.array_equal(grid[1:9, 1 + 9:9 + 9, 0], pixels[1])


def test_chunks_are_seeded_independently(run_dir):
    gen = load_generator(run_dir)
    assert gen.nfe() == 8 and gen.nfe(50) == 50
    ten = gen.sample(10, seed=2, batch_size=4)
    assert torch.equal(gen.sample(4, seed=2, batch_size=4), ten[:4])  # chunk 0 does not depend on the rest
    assert not torch.equal(gen.sample(4, seed=3, batch_size=4), ten[:4])


def test_errors_name_what_is_wrong(run_dir, tmp_path, capsys):
    missing = run(str(tmp_path), "--num", "3", "--out", str(tmp_path / "x.npz"), check=False)
    assert missing.returncode == 2 and "config.json not found" in missing.stderr
    for args, message in [(["--labels", "12"], "class indices in [0, 10)"),
                          (["--out", str(tmp_path / "x.txt")], "unknown format '.txt'"),
                          (["--steps", "0"], "num_steps must be an integer >= 1"),
                          (["--sampler", "ddim", "--eta", "nan"], "--eta must be a finite number >= 0, got nan"),
                          (["--sampler", "ddim", "--eta", "-1"], "--eta must be a finite number >= 0, got -1.0")]:
        with pytest.raises(SystemExit) as exit_info:
            sample_main([str(run_dir), "--num", "3", "--out", str(tmp_path / "x.npz"), *args])
        assert exit_info.value.code != 0 and message in capsys.readouterr().err
    gen = load_generator(run_dir)
    gen.config = dataclasses.replace(gen.config, num_classes=0)
    with pytest.raises(ValueError, match="unconditional"):
        gen.labels(3, [1])
