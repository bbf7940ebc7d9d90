"""The run directory: one trainer at a time (flock), the recipe checked against everything the run holds before
anything is written, a user's recipe.yaml never replaced."""

from __future__ import annotations

import json
import os
import platform

import pytest
import yaml

from gdiff import checkpoints, recipes, train
from gdiff.checkpoints import RunError
from gdiff.rundir import HEADER, RunDir
from gdiff.trainer import Trainer
from tests.test_trainer import TINY


def tiny(*overrides: str) -> recipes.Recipe:
    return recipes.from_dict(recipes.apply_overrides(TINY, overrides))


def test_a_second_holder_is_refused_with_the_pid_and_host(tmp_path):
    first, second = RunDir(tmp_path / "run"), RunDir(tmp_path / "run")
    first.lock()
    holder = json.loads((tmp_path / "run" / ".lock").read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == platform.node()
    with pytest.raises(RunError, match=f"in use by another trainer \\(PID {os.getpid()} on host "
                                       f"{platform.node()}"):
        second.lock()
    first.unlock()
    second.lock()  # free again
    second.unlock()


def test_only_the_main_process_locks(tmp_path):
    RunDir(tmp_path / "run", main=False).lock()
    assert not (tmp_path / "run").exists()


def _checkpoint_with(run, recipe: recipes.Recipe, step: int = 3) -> None:
    staged = checkpoints.staging_dir(run, step)
    (staged / checkpoints.RECIPE).write_text(yaml.safe_dump(recipe.to_dict()))
    checkpoints.commit(staged, keep=5)


def test_a_changed_recipe_is_refused_from_the_checkpoint_copy_before_writing(tmp_path):
    """recipe.yaml gone, checkpoints present: the checkpoint's own recipe is compared, nothing is written."""
    run = tmp_path / "run"
    _checkpoint_with(run, tiny())
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    with pytest.raises(RunError, match=r"step_000000003/recipe.yaml differs in generator.width, optim.lr_g"):
        RunDir(run).prepare(tiny("optim.lr_g=0.5", "generator.width=32"))
    assert sorted(p.relative_to(run) for p in run.rglob("*") if p.name != ".lock") == before
    RunDir(run).check(tiny("train.max_steps=7"))  # keys a resumed run may change


def test_the_resolved_recipe_is_written_and_rewritten_on_resume(tmp_path):
    run = RunDir(tmp_path)
    run.prepare(tiny())
    text = (tmp_path / "recipe.yaml").read_text()
    assert text.startswith(HEADER) and recipes.load(tmp_path / "recipe.yaml") == tiny()
    run.prepare(tiny("train.max_steps=7"))
    assert recipes.load(tmp_path / "recipe.yaml").train.max_steps == 7
    with pytest.raises(RunError, match="recipe.yaml differs in optim.lr_d"):
        run.prepare(tiny("optim.lr_d=0.5"))


def test_a_users_recipe_file_in_the_run_directory_is_left_alone(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(TINY))
    own = tmp_path / "recipe.yaml"
    own.write_text("# my notes\nextends: base.yaml\ntrain: {max_steps: 3}\n")
    recipe = recipes.load(own)
    RunDir(tmp_path).prepare(recipe)
    assert own.read_text() == "# my notes\nextends: base.yaml\ntrain: {max_steps: 3}\n"
    with pytest.raises(RunError, match="differs in optim.lr_g"):
        RunDir(tmp_path).prepare(recipes.load(own, ["optim.lr_g=0.5"]))


def test_a_second_trainer_exits_2_naming_the_holder(tmp_path, capsys):
    holder = RunDir(tmp_path / "run")
    holder.lock()
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    assert train.main([str(tmp_path / "tiny.yaml"), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert f"in use by another trainer (PID {os.getpid()} on host {platform.node()}" in err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".lock"]  # nothing written


def test_a_trainer_with_a_changed_recipe_writes_nothing(tmp_path):
    Trainer(tiny("train.max_steps=2", "eval.num_samples=100"), tmp_path).train()
    (tmp_path / "recipe.yaml").unlink()  # only the checkpoint's copy of the recipe is left
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    with pytest.raises(RunError, match="step_000000002/recipe.yaml differs in discriminator.width, optim.lr_g"):
        Trainer(tiny("train.max_steps=4", "optim.lr_g=0.5", "discriminator.width=32"), tmp_path)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


@pytest.mark.parametrize("where", ["file", "under_a_file", "/proc/gdiff-run"])
def test_a_run_directory_that_cannot_be_a_folder_is_one_error_line(tmp_path, capsys, where):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    (tmp_path / "file").write_text("mine")
    run_dir = {"file": tmp_path / "file", "under_a_file": tmp_path / "file" / "run"}.get(where, where)
    assert train.main([str(tmp_path / "tiny.yaml"), "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: run directory: cannot write in ") and err.count("\n") == 1, err
    assert str(run_dir) in err and (tmp_path / "file").read_text() == "mine"


def test_a_run_whose_checkpoints_are_all_damaged_is_left_as_it_was(tmp_path):
    Trainer(tiny("train.max_steps=2", "eval.num_samples=100"), tmp_path).train()
    for folder in checkpoints.committed(tmp_path):
        (folder / "ema.safetensors").write_bytes(b"damaged")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock"}
    with pytest.raises(RunError, match="no intact checkpoint"):
        Trainer(tiny("train.max_steps=4", "eval.num_samples=100"), tmp_path).train()
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock"} == before
