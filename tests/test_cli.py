"""The command-line entry points, run as a user would (subprocesses), including a 2-process DDP run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.test_trainer import TINY

ROOT = Path(__file__).parents[1]


def run(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture
def recipe_file(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def test_train_then_sample(tmp_path, recipe_file):
    run_dir = tmp_path / "run"
    run([sys.executable, "-m", "gdiff.train", str(recipe_file), "train.max_steps=20", "--run-dir", str(run_dir)])
    assert (run_dir / "metrics.json").is_file() and (run_dir / "recipe.yaml").is_file()
    out = tmp_path / "s.npz"
    run([sys.executable, "-m", "gdiff.sample", str(run_dir), "--num", "37", "--out", str(out), "--seed", "3"])
    samples = np.load(out)["samples"]
    assert samples.shape == (37, 1) and samples.dtype == np.float32
    again = tmp_path / "again.npz"
    run([sys.executable, "-m", "gdiff.sample", str(run_dir), "--num", "37", "--out", str(again), "--seed", "3",
         "--steps", "4"])
    assert np.load(again)["samples"].shape == (37, 1)


def test_train_reports_a_bad_recipe_key(tmp_path, recipe_file):
    proc = subprocess.run([sys.executable, "-m", "gdiff.train", str(recipe_file), "train.bach_size=3",
                           "--run-dir", str(tmp_path / "r")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "train.bach_size" in proc.stderr


def test_sample_reports_a_missing_run(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gdiff.sample", str(tmp_path), "--num", "3", "--out",
                           str(tmp_path / "x.npz")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "config.json not found" in proc.stderr


DDGAN = ["objective={type: ddgan, r1_gamma: 0.1, lazy_reg: 2}", "discriminator.pairwise=true",
         "discriminator.heads=[]", "diffusion.schedule=vp"]


@pytest.mark.parametrize("overrides", [[], DDGAN], ids=["siddm", "ddgan_lazy_r1"])
def test_two_ddp_ranks_stay_in_sync(tmp_path, overrides):
    """Two gloo ranks on the CPU: different data on each rank, identical networks after every step."""
    port = str(29517 + len(overrides))
    run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--main_process_port", port, str(ROOT / "tests" / "distributed_worker.py"), str(tmp_path), *overrides],
        env={"ACCELERATE_USE_CPU": "1"})
    ranks = [torch.load(tmp_path / f"rank{i}.pt") for i in range(2)]
    assert all(r["world"] == 2 and r["local_batch"] == TINY["train"]["batch_size"] // 2 for r in ranks)
    assert not torch.equal(ranks[0]["batch"], ranks[1]["batch"]), "each rank must draw its own data"
    assert not torch.equal(ranks[0]["noise"], ranks[1]["noise"]), "each rank must draw its own noise, t and z"
    for key in ("G", "D", "ema"):
        assert all(torch.equal(a, b) for a, b in zip(ranks[0][key], ranks[1][key], strict=True)), key
    assert (tmp_path / "run" / "checkpoints" / "step_000000006").is_dir()
    start = json.loads((tmp_path / "run" / "metadata.json").read_text())["starts"][0]
    assert start["world_size"] == 2 and start["versions"]["torch"] == torch.__version__
    states = sorted(p.name for p in (tmp_path / "run" / "checkpoints" / "step_000000006").iterdir())
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= set(states), "each rank's RNG must be saved"
