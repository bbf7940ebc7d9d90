"""``python -m gdiff.eval`` as a user runs it: image metrics and modes of an exported generator, the same numbers
from one process and from two gloo processes; the mixture metrics of a 2-D run; errors that say what to pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from gdiff import data, nets, recipes
from gdiff.build import generator_config
from gdiff.eval.__main__ import main as eval_main
from gdiff.export import ExportedGenerator

ROOT = Path(__file__).parents[1]
TINY_EXTRACTOR = "tests.test_eval_fidelity:TinyExtractor"
IMAGE_RECIPE = {
    "data": {"type": "stacked_digits", "size": 3000},
    "diffusion": {"schedule": "vp", "num_steps": 2},
    "generator": {"type": "unet", "channels": 16, "channel_mult": [1, 2], "num_res_blocks": 1,
                  "attention_resolutions": [], "num_head_channels": None, "num_heads": 1, "dropout": 0.0,
                  "num_groups": 4, "z_dim": 4},
    "discriminator": {"type": "none"},
    "objective": {"type": "ddgan"},
}
MIXTURE_RECIPE = {
    "data": {"type": "mog25", "per_mode": 200},
    "diffusion": {"schedule": "cosine", "num_steps": 2},
    "generator": {"type": "toy_generator", "width": 16, "depth": 2},
    "discriminator": {"type": "none"},
    "objective": {"type": "siddm"},
}


def export(tmp: Path, raw: dict) -> Path:
    """A run directory's recipe.yaml + generator/ of a randomly initialised generator (output layer re-drawn so
    that samples vary)."""
    recipe = recipes.from_dict(raw)
    source = data.build(recipe.data)
    torch.manual_seed(0)
    G = nets.build(recipe.generator, source.data_shape, source.num_classes, "generator")
    for name, p in G.named_parameters():
        if name.startswith("out_conv"):
            torch.nn.init.normal_(p, std=0.3)
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "recipe.yaml").write_text(yaml.safe_dump(recipe.to_dict()))
    config = generator_config(recipe, source.data_shape, source.num_classes, source.data_map)
    ExportedGenerator(config, G).save_pretrained(tmp / "generator")
    return tmp


def run(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_two_processes_give_the_numbers_of_one(tmp_path):
    run_dir = export(tmp_path / "run", IMAGE_RECIPE)
    common = ["-m", "gdiff.eval", str(run_dir), "--metrics", "fid,isc,kid,prc,modes", "--num", "150",
              "--batch-size", "20", "--ref-num", "400", "--feature-extractor", TINY_EXTRACTOR,
              "--cache-dir", str(tmp_path / "cache")]
    run([sys.executable, *common, "--out", str(tmp_path / "one.json")])
    run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--main_process_port", "29641", *common, "--out", str(tmp_path / "two.json")],
        env={"ACCELERATE_USE_CPU": "1"})
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert one["processes"] == 1 and two["processes"] == 2 and one["num_samples"] == two["num_samples"] == 150
    assert set(one["metrics"]) >= {"fid", "isc_mean", "kid_mean", "precision", "recall", "modes_covered",
                                   "kl_modes_uniform", "classifier_test_accuracy"}
    assert one["metrics"] == two["metrics"]
    assert one["metrics"]["fid"] > 0 and one["nfe"] == 2


def test_mixture_run_and_default_output_name(tmp_path, capsys):
    run_dir = export(tmp_path / "mog", MIXTURE_RECIPE)
    eval_main([str(run_dir), "--num", "500", "--steps", "4"])
    result = json.loads((run_dir / "eval_ancestral_nfe4_n500.json").read_text())
    assert set(result["metrics"]) == {"frechet", "modes_covered", "num_modes", "high_quality", "kl_modes_uniform"}
    assert result["nfe"] == 4 and result["metrics"]["num_modes"] == 25
    assert json.loads(capsys.readouterr().out)["metrics"] == result["metrics"]


@pytest.mark.parametrize("args,message", [
    (["--metrics", "fid,fdd"], "unknown metric(s) ['fdd']"),
    ([], "--metrics is required"),
    (["--metrics", "fid", "--inception-weights", "/nonexistent.pth"], "weights file /nonexistent.pth not found"),
])
def test_errors_say_what_to_pass(tmp_path, capsys, args, message):
    run_dir = export(tmp_path / "run", IMAGE_RECIPE)
    with pytest.raises(SystemExit) as exit_info:
        eval_main([str(run_dir), "--num", "10", *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1


def test_mixture_refuses_image_metrics(tmp_path, capsys):
    run_dir = export(tmp_path / "mog", MIXTURE_RECIPE)
    with pytest.raises(SystemExit) as exit_info:
        eval_main([str(run_dir), "--num", "10", "--metrics", "fid"])
    assert exit_info.value.code == 2 and "image metrics" in capsys.readouterr().err
