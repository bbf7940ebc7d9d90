"""Checkpoints: a manifest seals each one; resume takes the newest intact one, names the damaged ones it skips,
ignores folders that are not checkpoints, and warns when an RNG state is missing."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import save_file

from gdiff import checkpoints
from gdiff.checkpoints import RunError


def make(run, step: int, ranks: int = 1, keep: int = 10):
    staged = checkpoints.staging_dir(run, step)
    save_file({"w": torch.full((64,), float(step))}, str(staged / "model.safetensors"))
    (staged / "trainer_state.json").write_text(json.dumps({"step": step}))
    for r in range(ranks):
        (staged / f"random_states_{r}.pkl").write_bytes(b"rng%d" % r)
    return checkpoints.commit(staged, keep=keep)


def test_the_manifest_lists_every_file_with_its_size_and_sha256(tmp_path):
    folder = make(tmp_path, 3, ranks=2)
    manifest = json.loads((folder / "manifest.json").read_text())
    files = sorted(p.name for p in folder.iterdir() if p.name != "manifest.json")
    assert sorted(manifest["files"]) == files
    for name, entry in manifest["files"].items():
        data = (folder / name).read_bytes()
        assert entry == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert checkpoints.damage(folder) == []
    assert not list(checkpoints.checkpoint_dir(tmp_path).glob(".tmp-*"))


@pytest.mark.parametrize("harm, phrase", [
    (lambda f: (f / "model.safetensors").unlink(), "model.safetensors missing"),
    (lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:100]),
     "model.safetensors has 100 bytes"),
    (lambda f: (f / "trainer_state.json").write_text('{"step": 9}'), "trainer_state.json changed"),
    (lambda f: (f / "custom_checkpoint_0.pkl").write_bytes(b"x"), "custom_checkpoint_0.pkl not in the manifest"),
    (lambda f: (f / "manifest.json").unlink(), "manifest.json missing"),
    (lambda f: (f / "manifest.json").write_text("{"), "manifest.json unreadable"),
])
def test_damage_names_the_file(tmp_path, harm, phrase):
    folder = make(tmp_path, 1)
    harm(folder)
    assert any(phrase in p for p in checkpoints.damage(folder)), checkpoints.damage(folder)


def test_same_size_change_is_caught_by_the_hash(tmp_path):
    folder = make(tmp_path, 1)
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (folder / "model.safetensors").write_bytes(bytes(data))
    assert checkpoints.damage(folder) == ["model.safetensors changed (SHA-256 differs)"]


def test_resume_falls_back_to_the_newest_intact_checkpoint(tmp_path, capsys):
    for step in (10, 20, 30):
        make(tmp_path, step)
    (checkpoints.checkpoint_dir(tmp_path) / "step_000000030" / "model.safetensors").unlink()
    state = checkpoints.checkpoint_dir(tmp_path) / "step_000000020" / "trainer_state.json"
    state.write_text(state.read_text()[:-1])
    chosen = checkpoints.select(tmp_path)
    assert checkpoints.step_of(chosen) == 10
    err = capsys.readouterr().err
    assert err.count("warning: damaged checkpoint skipped") == 2
    assert "step_000000030: model.safetensors missing" in err and "step_000000020: trainer_state.json" in err


def test_no_intact_checkpoint_is_a_run_error(tmp_path):
    assert checkpoints.select(tmp_path) is None  # a new run
    folder = make(tmp_path, 5)
    (folder / "model.safetensors").unlink()
    with pytest.raises(RunError, match="no intact checkpoint.*step_000000005: model.safetensors missing"):
        checkpoints.select(tmp_path)


def test_folders_that_are_not_checkpoints_are_ignored(tmp_path):
    make(tmp_path, 7)
    root = checkpoints.checkpoint_dir(tmp_path)
    for name in ("step_backup", "step_00000009", "step_0000000099", ".tmp-step_000000008", "zzz"):
        (root / name).mkdir()
    (root / "step_000000050").write_text("a file, not a folder")
    checkpoints.staging_dir(tmp_path, 6)  # a save killed before its commit
    assert [p.name for p in checkpoints.committed(tmp_path)] == ["step_000000007"]
    assert checkpoints.select(tmp_path).name == "step_000000007"
    make(tmp_path, 8, keep=1)  # the commit prunes old checkpoints and killed saves only
    assert {p.name for p in root.iterdir()} == {"step_backup", "step_00000009", "step_0000000099", "zzz",
                                                 "step_000000050", "step_000000008"}


def test_a_missing_rng_state_is_a_loud_warning(tmp_path, capsys):
    make(tmp_path, 4, ranks=1)
    assert checkpoints.select(tmp_path, world_size=1).name == "step_000000004"
    assert capsys.readouterr().err == ""
    checkpoints.select(tmp_path, world_size=2)
    assert "random_states_1.pkl" in (err := capsys.readouterr().err) and "NOT bit-identical" in err
    # listed in the manifest but gone: damage, not a warning
    (checkpoints.checkpoint_dir(tmp_path) / "step_000000004" / "random_states_0.pkl").unlink()
    with pytest.raises(RunError, match="random_states_0.pkl missing"):
        checkpoints.select(tmp_path)


def test_truncated_safetensors_is_named(tmp_path):
    path = tmp_path / "ema.safetensors"
    checkpoints.save_tensors_atomically({"w": torch.arange(100.0)}, path)
    assert torch.equal(checkpoints.load_tensors(path)["w"], torch.arange(100.0))
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(ValueError, match="ema.safetensors: not a readable safetensors file"):
        checkpoints.load_tensors(path)
    with pytest.raises(FileNotFoundError, match="nothing.safetensors not found"):
        checkpoints.load_tensors(tmp_path / "nothing.safetensors")


def test_the_trainer_resumes_from_the_newest_intact_checkpoint(tmp_path, capsys):
    from gdiff.trainer import Trainer
    from tests.test_trainer import tiny

    recipe = tiny("train.max_steps=4", "train.checkpoint_every=2", "eval.num_samples=100")
    Trainer(recipe, tmp_path).train()
    ema = checkpoints.checkpoint_dir(tmp_path) / "step_000000004" / "ema.safetensors"
    ema.write_bytes(ema.read_bytes()[:-10])
    capsys.readouterr()
    again = Trainer(recipe, tmp_path)
    assert again.resume() and again.step == 2
    assert "step_000000004: ema.safetensors has" in capsys.readouterr().err


def test_a_checkpoint_that_does_not_fit_the_networks_is_named(tmp_path):
    """An intact checkpoint of other networks (an older run without stored recipes): a RunError naming it."""
    from gdiff.trainer import Trainer
    from tests.test_trainer import tiny

    Trainer(tiny("train.max_steps=1", "eval.num_samples=100"), tmp_path).train()
    (tmp_path / "recipe.yaml").unlink()
    folder = checkpoints.latest(tmp_path)
    (folder / "recipe.yaml").unlink()
    checkpoints.write_manifest(folder)
    with pytest.raises(RunError, match="checkpoint .*step_000000001 cannot be loaded into this run's networks"):
        Trainer(tiny("generator.width=32"), tmp_path).resume()
