"""Self-describing generator folders: a folder copied alone samples the same numbers with no data set in reach;
damaged or foreign folders are refused with the file named; nothing is unpickled."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gdiff import load_recipe
from gdiff.export import CONFIG_NAME, WEIGHTS_NAME, ExportedGenerator, GeneratorConfig, load_generator
from gdiff.trainer import Trainer

ROOT = Path(__file__).parents[1]
SAMPLE_ARGS = {"num": 300, "seed": 3, "batch_size": 128}
NO_DATA = """
import sys, numpy as np, gdiff.data, gdiff.data.source
def refuse(*args, **kwargs):
    raise RuntimeError("a data source was built")
gdiff.data.build = refuse
gdiff.data.source.DataSource.__init__ = refuse
gdiff.data.GaussianGrid.__init__ = refuse
from gdiff import load_generator
samples = load_generator(sys.argv[1]).sample(300, seed=3, batch_size=128)
np.save(sys.argv[2], samples.numpy())
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Trainer]:
    path = tmp_path_factory.mktemp("run")
    recipe = load_recipe(ROOT / "recipes" / "mog25_siddm.yaml",
                         ["data.per_mode=40", "train.max_steps=30", "train.batch_size=64", "train.log_every=10",
                          "train.trackers=[]", "train.threads=1", "eval.num_samples=500", "eval.batch_size=128",
                          "eval.best=frechet"])
    trainer = Trainer(recipe, path)
    trainer.train()
    return path, trainer


def test_a_copied_folder_samples_the_same_numbers_without_any_data(run, tmp_path):
    path, trainer = run
    moved = tmp_path / "elsewhere" / "my_generator"
    shutil.copytree(path / "generator", moved)
    assert sorted(p.name for p in moved.iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME, "README.md"])
    out = tmp_path / "samples.npy"
    proc = subprocess.run([sys.executable, "-c", NO_DATA, str(moved), str(out)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    moved_samples = torch.from_numpy(np.load(out))
    here = load_generator(path).sample(**SAMPLE_ARGS)
    assert moved_samples.shape == (300, 2) and torch.equal(moved_samples, here)
    # the Trainer's own sampling is the exported path too
    assert torch.equal(trainer.sample(300, seed=3), load_generator(path).sample(300, seed=3, batch_size=128))


def test_the_config_describes_everything_sampling_needs(run):
    config = json.loads((run[0] / "generator" / CONFIG_NAME).read_text())
    assert config["format"] == "gdiff.generator" and config["data_shape"] == [2] and config["num_classes"] == 0
    assert config["generator"]["type"] == "toy_generator" and config["diffusion"]["num_steps"] == 2
    assert config["data_map"]["type"] == "affine" and len(config["data_map"]["shift"]) == 2
    card = (run[0] / "generator" / "README.md").read_text()
    assert "library_name: gdiff" in card and "`toy_generator`" in card and "2 network calls per sample" in card


def test_the_best_generator_is_exported_beside_its_metrics(run):
    path = run[0]
    best = json.loads((path / "metrics_best.json").read_text())
    assert (path / "generator_best" / WEIGHTS_NAME).is_file() and "frechet" in best
    assert load_generator(path / "generator_best").sample(4).shape == (4, 2)


def test_save_and_load_round_trip_through_the_hub_mixin(run, tmp_path):
    gen = load_generator(run[0])
    gen.save_pretrained(tmp_path / "copy")
    again = ExportedGenerator.from_pretrained(str(tmp_path / "copy"))
    assert again.config == gen.config
    assert all(torch.equal(a, b) for a, b in zip(again.G.state_dict().values(), gen.G.state_dict().values(),
                                                    strict=True))


def test_damaged_folders_name_the_file(run, tmp_path, monkeypatch):
    folder = tmp_path / "gen"
    shutil.copytree(run[0] / "generator", folder)
    weights = (folder / WEIGHTS_NAME).read_bytes()
    (folder / WEIGHTS_NAME).write_bytes(weights[: len(weights) // 2])
    with pytest.raises(ValueError, match=f"{WEIGHTS_NAME}: not a readable safetensors file"):
        load_generator(folder)
    proc = subprocess.run([sys.executable, "-m", "gdiff.sample", str(folder), "--num", "4", "--out",
                           str(tmp_path / "x.npz")], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and WEIGHTS_NAME in proc.stderr
    assert "Traceback" not in proc.stderr
    (folder / WEIGHTS_NAME).write_bytes(weights)
    config = json.loads((folder / CONFIG_NAME).read_text())
    (folder / CONFIG_NAME).write_text(json.dumps({**config, "generator": {**config["generator"], "width": 7}}))
    with pytest.raises(ValueError, match="does not fit the network"):
        load_generator(folder)
    (folder / CONFIG_NAME).write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="not a gdiff generator config"):
        load_generator(folder)
    (folder / CONFIG_NAME).unlink()
    with pytest.raises(FileNotFoundError, match=CONFIG_NAME):
        load_generator(folder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="Hub"):
        load_generator("nobody/no-such-generator")


class _Marker:
    def __reduce__(self):
        return (Path.touch, (Path(os.environ["GDIFF_MARKER"]),))


@pytest.mark.parametrize("text, message", [
    ("{oops", "config.json: cannot read the generator config"),
    ("[1, 2]", "config.json: a generator config must be a JSON object, got list"),
    (None, "config.json: cannot read the generator config: 'utf-8' codec"),
    ("bogus_net", "config.json: generator.type: unknown network type 'bogus_net'"),
    ("foreign weights", "model.safetensors does not fit the network of"),
])
def test_a_broken_config_or_foreign_weights_is_one_line_naming_the_file(run, tmp_path, capsys, text, message):
    from safetensors.torch import save_file

    from gdiff.sample import main as sample_main

    folder = tmp_path / "gen"
    shutil.copytree(run[0] / "generator", folder)
    config = folder / CONFIG_NAME
    if text is None:
        config.write_bytes(b"\xff\xfe\x00")
    elif text == "bogus_net":
        config.write_text(config.read_text().replace('"toy_generator"', '"bogus_net"'))
    elif text == "foreign weights":
        save_file({"foo": torch.zeros(3)}, str(folder / WEIGHTS_NAME))
    else:
        config.write_text(text)
    with pytest.raises(SystemExit) as info:
        sample_main([str(folder), "--num", "4", "--out", str(tmp_path / "x.npz")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "x.npz").exists()


def test_a_mistyped_local_path_is_not_looked_up_on_the_hub(tmp_path, monkeypatch):
    """runs/TYPO looks like a Hub repo id; with runs/ present here it is a missing local folder, found offline."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "runs").mkdir()
    with pytest.raises(FileNotFoundError, match="runs/mog25_sidm: no such generator folder .read as a local path"):
        load_generator("runs/mog25_sidm")


def test_a_pickle_in_place_of_the_weights_runs_nothing(run, tmp_path, monkeypatch):
    folder = tmp_path / "gen"
    shutil.copytree(run[0] / "generator", folder)
    marker = tmp_path / "marker"
    monkeypatch.setenv("GDIFF_MARKER", str(marker))
    (folder / WEIGHTS_NAME).write_bytes(pickle.dumps({"net.weight": _Marker()}))
    with pytest.raises(ValueError, match=WEIGHTS_NAME):
        load_generator(folder)
    assert not marker.exists()


def test_config_round_trips_through_json():
    config = GeneratorConfig({"type": "toy_generator"}, {"schedule": "cosine", "num_steps": 2}, (2,), 0,
                             {"type": "pixels", "max_value": 255.0})
    assert GeneratorConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_an_interrupted_export_leaves_the_previous_folder_whole(run, tmp_path, monkeypatch):
    gen = load_generator(run[0])
    gen.save_pretrained(tmp_path / "gen")
    before = {p.name: p.read_bytes() for p in (tmp_path / "gen").iterdir()}

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies while writing the weights

    monkeypatch.setattr("gdiff.export.save_file", killed)
    with pytest.raises(KeyboardInterrupt):
        gen.save_pretrained(tmp_path / "gen")
    after = {p.name: p.read_bytes() for p in (tmp_path / "gen").iterdir() if not p.name.startswith(".tmp-")}
    assert after == before
    assert torch.equal(load_generator(tmp_path / "gen").sample(8), gen.sample(8))
