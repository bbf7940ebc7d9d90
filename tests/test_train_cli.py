"""``python -m gdiff.train``: bad input gives one ``error:`` line naming the key or file, exit 2, no traceback;
``--dry-run`` prints the resolved recipe and parameter counts and writes nothing.

Every case runs in-process through ``gdiff.train.main`` (the module's ``__main__`` is ``sys.exit(main())``); one
case per kind of failure also runs as a real subprocess (about 4 s each: importing torch and accelerate), and
one under ``accelerate launch``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gdiff import train

ROOT = Path(__file__).parents[1]
MOG = str(ROOT / "recipes" / "mog25_siddm.yaml")


def run_cli(args: list[str], cwd: Path = ROOT, launcher: tuple[str, ...] = ("-m", "gdiff.train")):
    return subprocess.run([sys.executable, *launcher, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})


def run_main(capsys, args: list[str]) -> tuple[int, str, str]:
    code = train.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


# (arguments, text the error must contain); {tmp} is the test's temporary directory
BAD_INPUT = {
    "unknown_section": ([MOG, "trian.max_steps=3"], "unknown recipe section 'trian' (did you mean 'train'?)"),
    "unknown_optim_key": ([MOG, "optim.lr_gen=1e-4"], "optim.lr_gen (did you mean 'lr_g'?)"),
    "unknown_train_key": ([MOG, "train.bach_size=3"], "train.bach_size (did you mean 'batch_size'?)"),
    "unknown_eval_key": ([MOG, "eval.num_sample=3"], "eval.num_sample (did you mean 'num_samples'?)"),
    "wrong_type": ([MOG, "train.max_steps=ten"], "train.max_steps must be int"),
    "wrong_type_list": ([MOG, "optim.betas=0.5"], "optim.betas must be a list of 2 numbers"),
    "batch_size": ([MOG, "train.batch_size=0"], "train.batch_size must be >= 1"),
    "max_steps": ([MOG, "train.max_steps=-1"], "train.max_steps must be >= 0"),
    "lr": ([MOG, "optim.lr_d=0"], "optim.lr_d must be a finite learning rate > 0"),
    "betas": ([MOG, "optim.betas=[0.5, 1]"], "optim.betas must be two numbers in [0, 1)"),
    "ema_decay": ([MOG, "train.ema_decay=2"], "train.ema_decay must be in [0, 1]"),
    "micro_batch_negative": ([MOG, "train.micro_batch=-4"], "train.micro_batch must be >= 0"),
    "micro_batch_divides": ([MOG, "train.micro_batch=100"], "train.micro_batch must be 0 or a divisor"),
    "log_every": ([MOG, "train.log_every=0"], "train.log_every must be >= 1"),
    "mixed_precision": ([MOG, "train.mixed_precision=bf61"], "train.mixed_precision must be one of"),
    "compile": ([MOG, "train.compile=yes please"], "train.compile must be one of"),
    "best_mode": ([MOG, "eval.best_mode=low"], "eval.best_mode must be one of ['min', 'max']"),
    "best_not_computed": ([MOG, "eval.best=fid"], "eval.best must be one of"),
    "metric": ([MOG, "eval.metrics=[fid, kdi]"], "eval.metrics[] must be one of"),
    "missing_file": (["{tmp}/nowhere.yaml"], "recipe file not found: {tmp}/nowhere.yaml"),
    "override_without_equals": ([MOG, "foo"], "override 'foo' must look like key.path=value"),
    "override_into_value": ([MOG, "train.max_steps.x=1"], "train.max_steps is a value (8000), not a section"),
    "override_bad_yaml": ([MOG, "train.seed=[1"], "override 'train.seed=[1': not valid YAML"),
    "section_not_mapping": ([MOG, "train=3"], "'train' must be a mapping"),
    "built_section": ([MOG, "diffusion.schedule=linaer"], "diffusion.schedule must be one of"),
    "heads_mismatch": ([MOG, "discriminator.heads=[]"], "needs discriminator heads ['regression']"),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_input_exits_2_with_the_key_named(case, capsys, tmp_path):
    args, named = BAD_INPUT[case]
    args = [a.format(tmp=tmp_path) for a in args]
    # dry-run: the recipe errors and the building errors both come out before anything is written
    code, out, err = run_main(capsys, [*args, "--dry-run"])
    assert code == 2 and out == ""
    assert err.startswith("error: ") and named.format(tmp=tmp_path) in err and err.count("\n") == 1, err


def test_broken_yaml_unsafe_tag_and_cycle_in_files(capsys, tmp_path):
    marker = tmp_path / "marker"
    cases = {
        write(tmp_path / "broken.yaml", "data: {type: mog25}\ntrain:\n  seed: [1\n"):
            "broken.yaml: not valid YAML at line",
        write(tmp_path / "evil.yaml", f"data: !!python/object/apply:os.system ['touch {marker}']\n"):
            "evil.yaml: not valid YAML at line 1, column 7: could not determine a constructor",
        write(tmp_path / "a.yaml", "extends: b.yaml\n"): "recipe 'extends' cycle",
    }
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    for path, named in cases.items():
        code, _, err = run_main(capsys, [path])
        assert code == 2 and named in err, err
    assert not marker.exists()


class _Exploding:
    """Stands in for the Trainer: builds fine, then ``train`` raises what it was given."""

    error: Exception

    def __init__(self, recipe, run_dir) -> None:
        pass

    def train(self) -> None:
        raise self.error


def test_non_finite_loss_exits_1_and_bugs_keep_their_traceback(capsys, monkeypatch):
    import gdiff.trainer

    monkeypatch.setattr(gdiff.trainer, "Trainer", _Exploding)
    _Exploding.error = FloatingPointError("non-finite loss at step 7: {'d/total': nan}")
    code, _, err = run_main(capsys, [MOG])
    assert code == 1 and err == "error: non-finite loss at step 7: {'d/total': nan}\n"
    _Exploding.error = RuntimeError("a bug")
    with pytest.raises(RuntimeError, match="a bug"):
        train.main([MOG])


def test_dry_run_prints_the_recipe_and_sizes(capsys, tmp_path):
    code, out, err = run_main(capsys, [str(ROOT / "recipes" / "cifar10_siddm_no_afd.yaml"), "train.seed=3",
                                       "--dry-run", "--run-dir", str(tmp_path / "run")])
    assert code == 0 and err == ""
    printed = yaml.safe_load(out)
    assert printed["objective"]["afd_weight"] == 0 and printed["train"]["seed"] == 3 and "extends" not in printed
    assert "# generator (unet): 127,494,147 parameters" in out  # docs/networks.md: 127.5 M
    assert "# discriminator (unet_discriminator): " in out and "# data: shape [3, 32, 32]" in out
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------- as real processes
@pytest.mark.parametrize("case", ["unknown_train_key", "wrong_type", "missing_file", "override_without_equals"])
def test_bad_input_in_a_subprocess(case, tmp_path):
    args, named = BAD_INPUT[case]
    proc = run_cli([a.format(tmp=tmp_path) for a in args], cwd=tmp_path)
    assert proc.returncode == 2 and named.format(tmp=tmp_path) in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "runs").exists()


def test_unsafe_tag_in_a_subprocess_is_not_run(tmp_path):
    marker = tmp_path / "marker"
    path = write(tmp_path / "evil.yaml", f"train: !!python/object/apply:os.system ['touch {marker}']\n")
    proc = run_cli([path, "--run-dir", str(tmp_path / "run")])
    assert proc.returncode == 2 and "evil.yaml: not valid YAML at line 1" in proc.stderr
    assert "Traceback" not in proc.stderr and not marker.exists() and not (tmp_path / "run").exists()


def test_trainer_construction_error_in_a_subprocess(tmp_path):
    """The data set is missing: the Trainer's FileNotFoundError, reported like a recipe error, nothing written."""
    proc = run_cli([str(ROOT / "recipes" / "cifar10_ddgan.yaml"), f"data.root={tmp_path / 'none'}",
                    "--run-dir", str(tmp_path / "run")])
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "data.root" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()


def test_dry_run_in_a_subprocess_writes_nothing(tmp_path):
    proc = run_cli([MOG, "--dry-run"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "# generator (toy_generator): " in proc.stdout and "# discriminator (toy_discriminator): " in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_bad_input_under_accelerate_launch(tmp_path):
    """``accelerate launch -q`` (quiet: no launcher traceback) passes the message through; it exits 1 itself."""
    proc = run_cli(["--cpu", "--num_processes", "1", "-q", "-m", "gdiff.train", MOG, "train.bach_size=3"],
                   cwd=tmp_path, launcher=("-m", "accelerate.commands.launch"))
    assert proc.returncode != 0 and "error: " in proc.stderr and "did you mean 'batch_size'" in proc.stderr
    assert "Traceback" not in proc.stderr
