"""python -m gdiff.convert: a reference checkpoint becomes a generator folder that samples; bad checkpoints are
refused with one error line, before anything is written; a pickle carrying code runs nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gdiff import load_generator, recipes
from gdiff.convert.__main__ import main
from gdiff.sample import main as sample_main

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "convert"
CASES = json.loads((FIXTURES / "manifest.json").read_text())["cases"]
BASES = {"ddgan_cifar10": "cifar10_ddgan.yaml", "wavediff_cifar10": "cifar10_wavediff.yaml"}


def recipe_for(name: str, folder: Path, **generator: object) -> Path:
    """The published recipe with the fixture's reduced widths."""
    section = {k: v for k, v in CASES[name]["generator"].items() if k != "type"} | generator
    path = folder / f"{name}.yaml"
    path.write_text(f"extends: {ROOT / 'recipes' / BASES[name]}\ngenerator: {json.dumps(section)}\n")
    return path


def checkpoint_for(name: str, folder: Path) -> Path:
    """The fixture's weights saved as the reference does: torch.save of the DDP state dict, float32."""
    state = {k: v.float() for k, v in load_file(str(FIXTURES / f"{name}.weights.safetensors")).items()}
    path = folder / "netG_1200.pth"
    torch.save(state, path)
    return path


@pytest.mark.parametrize("name", sorted(BASES))
def test_converted_folder_samples(name: str, tmp_path: Path) -> None:
    out = tmp_path / "converted"
    assert main([CASES[name]["repo"], str(checkpoint_for(name, tmp_path)), "--recipe",
                 str(recipe_for(name, tmp_path)), "--out", str(out)]) == 0
    gen = load_generator(out)
    config = json.loads((out / "config.json").read_text())
    assert config["generator"]["time_input"] == "index"
    assert config["generator"]["time_steps"] == config["diffusion"]["num_steps"] == 4
    assert config["diffusion"]["eps"] == 0.0
    recipe = recipes.load(out / "recipe.yaml")  # what gdiff.eval reads for the data set to compare with
    assert recipe.generator == config["generator"] and recipe.diffusion == config["diffusion"]
    images = gen.sample(3, seed=1, batch_size=2)
    assert images.shape == (3, 3, 32, 32) and images.abs().max() <= 1 and images.std() > 0.05
    assert sample_main([str(out), "--num", "2", "--out", str(tmp_path / "s.npz"), "--device", "cpu"]) is None
    with np.load(tmp_path / "s.npz") as f:
        assert next(iter(f.values())).shape[0] == 2


def run_failing(args: list[str], capsys: pytest.CaptureFixture) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_bad_checkpoints_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    recipe = str(recipe_for("ddgan_cifar10", tmp_path))
    good = checkpoint_for("ddgan_cifar10", tmp_path)
    out = tmp_path / "out"

    assert "not found" in run_failing(["ddgan", str(tmp_path / "none.pth"), "--recipe", recipe, "--out", str(out)],
                                      capsys)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:5000])
    assert "not a readable" in run_failing(["ddgan", str(truncated), "--recipe", recipe, "--out", str(out)], capsys)

    foreign = tmp_path / "foreign.pth"
    torch.save({"module.fc.weight": torch.zeros(2, 2), "module.all_modules.0.weight": torch.zeros(16, 4)}, foreign)
    err = run_failing(["ddgan", str(foreign), "--recipe", recipe, "--out", str(out)], capsys)
    assert "missing keys" in err and "unexpected keys" in err and "fc.weight" in err

    (tmp_path / "wide").mkdir()
    wider = str(recipe_for("ddgan_cifar10", tmp_path / "wide", channels=8))
    err = run_failing(["ddgan", str(good), "--recipe", wider, "--out", str(out)], capsys)
    assert "mismatched shapes" in err and "all_modules.0.weight" in err

    content = tmp_path / "content.pth"
    torch.save({"epoch": 3, "netG_dict": {"w": torch.zeros(1)}}, content)
    assert "content.pth" in run_failing(["ddgan", str(content), "--recipe", recipe, "--out", str(out)], capsys)

    wavelet_recipe = str(recipe_for("wavediff_cifar10", tmp_path))
    assert "data.transform" in run_failing(["ddgan", str(good), "--recipe", wavelet_recipe, "--out", str(out)],
                                           capsys)
    assert not out.exists()


class Payload:
    """Unpickling this object calls os.mkdir on the marker path."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_pickle_with_code_runs_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "marker"
    evil = tmp_path / "netG_1.pth"
    torch.save({"module.all_modules.0.weight": Payload(marker)}, evil)
    assert not marker.exists()
    err = run_failing(["ddgan", str(evil), "--recipe", str(recipe_for("ddgan_cifar10", tmp_path)), "--out",
                       str(tmp_path / "out")], capsys)
    assert "refused" in err and "weights_only" in err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_plain_pickle_is_refused_without_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A plain pickle (protocol 4, not torch.save's zip): one error line, no torch warning before it."""
    import pickle
    import warnings

    marker = tmp_path / "marker"
    evil = tmp_path / "netG_1.pth"
    evil.write_bytes(pickle.dumps({"module.w": Payload(marker)}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        err = run_failing(["ddgan", str(evil), "--recipe", str(recipe_for("ddgan_cifar10", tmp_path)), "--out",
                           str(tmp_path / "out")], capsys)
    assert "refused" in err and not [w for w in caught if "pickle protocol" in str(w.message)]
    assert not marker.exists() and not (tmp_path / "out").exists()
