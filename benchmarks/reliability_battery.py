"""An independent battery of bad inputs and faults against gdiff's command-line tools.

Each case runs one CLI (``python -m gdiff.train`` / ``--dry-run`` / ``gdiff.sample`` / ``gdiff.eval`` /
``gdiff.convert`` / ``gdiff.autoencoders.train``) as a subprocess in its own folder and classifies the outcome:

- ``error`` cases are clean when the command exits 2 with ONE ``error:`` line on stderr (argparse's usage line plus
  its ``error:`` line also counts) that names the expected key or file, no traceback, no marker file created by a
  hostile pickle or YAML tag, and nothing written (the case folder's files are unchanged);
- ``ok`` cases (documented fallbacks, valid edge inputs) are clean when the command exits 0 with no traceback, no
  marker, and the expected warning on stderr when one is documented;
- signal cases check the exit status, the saved checkpoint and a clean resume.

Usage: ``python benchmarks/reliability_battery.py [--work /tmp/gdiff-battery] [--only SUBSTRING] [--md OUT.md]``
(run from the repository root with its virtual environment's python; OMP_NUM_THREADS=1 recommended).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import pickle
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(os.environ.get("GDIFF_REPO", Path(__file__).resolve().parents[1]))
PY = sys.executable
MARKER = "PWNED_MARKER"
MOG = ["train.max_steps=20", "train.batch_size=64", "data.per_mode=50", "train.trackers=[]", "train.threads=1",
       "eval.num_samples=200"]
TINY_UNET = ["generator.channels=8", "discriminator.channels=8", "generator.num_groups=4",
             "discriminator.num_groups=4", "generator.num_head_channels=8", "discriminator.num_head_channels=8",
             "generator.channel_mult=[1]", "discriminator.channel_mult=[1]"]
DIGITS = ["train.max_steps=4", "train.batch_size=16", "train.trackers=[]", "train.threads=1", "eval.num_samples=64",
          "train.sample_every=0", "train.checkpoint_every=2", *TINY_UNET]


def recipe(name: str) -> str:
    return str(REPO / "recipes" / f"{name}.yaml")


class Evil:
    """Unpickling this creates MARKER in the current folder."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def evil_pickle(path: Path) -> None:
    path.write_bytes(pickle.dumps({"state_dict": Evil()}))


def evil_torch(path: Path) -> None:
    import torch

    torch.save({"state_dict": Evil(), "w": torch.zeros(2)}, path)


@dataclass
class Case:
    name: str
    area: str
    argv: list[str]                      # after the python executable: ["-m", "gdiff.train", ...]
    expect: str = "error"                # error | ok
    names: str = ""                      # text the error line (or warning for ok) must contain
    setup: Callable[[Path], None] | None = None
    check: Callable[[Path, subprocess.CompletedProcess], list[str]] | None = None
    timeout: float = 300
    runner: Callable[[Case, Path], tuple[int, str, str]] | None = None
    ignore_writes: bool = False          # the case's own helper process writes (a first trainer)
    online: bool = False                 # run without HF_HUB_OFFLINE=1 (a Hub lookup would go to the network)
    result: dict = field(default_factory=dict)


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            try:
                data = path.read_bytes()
            except OSError:
                continue
            out[str(path.relative_to(folder))] = (len(data), hashlib.sha256(data).hexdigest()[:16])
    return out


def meaningful_lines(stderr: str) -> list[str]:
    """stderr lines without tqdm's progress bars and blank lines."""
    lines = []
    for raw in stderr.replace("\r", "\n").splitlines():
        line = raw.strip()
        if not line or "it/s]" in line or "s/it]" in line or line.endswith("?it/s]") or "%|" in line:
            continue
        lines.append(line)
    return lines


def classify(case: Case, work: Path, rc: int, out: str, err: str, before: dict) -> list[str]:
    problems = []
    lines = meaningful_lines(err)
    if "Traceback" in err or "Traceback" in out:
        problems.append("traceback")
    if list(work.rglob(MARKER)) or Path(MARKER).exists():
        problems.append("MARKER created (code ran)")
    if case.expect == "error":
        if rc != 2:
            problems.append(f"exit {rc}")
        argparse_style = (len(lines) >= 2 and lines[0].startswith("usage:") and ": error:" in lines[-1])
        errors = [line for line in lines if line.startswith("error:")]
        if not argparse_style and not (len(lines) == 1 and len(errors) == 1):
            problems.append(f"{len(lines)} stderr lines")
        text = lines[-1] if lines else ""
        if case.names and case.names.lower() not in text.lower():
            problems.append(f"error does not name {case.names!r}")
        after = snapshot(work)
        # a lock file that was there before holds the last holder's PID: rewriting it is the documented lock
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k) and MARKER not in k
                         and not (k.endswith("/.lock") and k in before))
        if changed and not case.ignore_writes:
            problems.append(f"wrote {changed[:3]}{'...' if len(changed) > 3 else ''}")
    elif case.expect == "ok":
        if rc != 0:
            problems.append(f"exit {rc}")
        if case.names and case.names.lower() not in err.lower():
            problems.append(f"no warning naming {case.names!r}")
    return problems


def run_case(case: Case, root: Path) -> None:
    work = root / case.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if case.setup:
        try:
            case.setup(work)
        except Exception as exc:  # a broken case, not a gdiff failure: reported as such
            case.result = {"name": case.name, "area": case.area, "expect": case.expect, "rc": None, "clean": False,
                           "problems": [f"battery setup failed: {exc!r}"], "seconds": 0, "last_line": ""}
            return
    before = snapshot(work)
    start = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "GDIFF_CACHE_DIR": str(work / ".cache"),
           **({} if case.online else {"HF_HUB_OFFLINE": "1"})}
    if case.runner:
        rc, out, err = case.runner(case, work)
    else:
        try:
            proc = subprocess.run([PY, *case.argv], cwd=work, capture_output=True, text=True, timeout=case.timeout,
                                  env=env)
            rc, out, err = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            rc, out, err = -999, str(exc.stdout or ""), f"timeout after {case.timeout} s\n{exc.stderr or ''}"
    seconds = time.perf_counter() - start
    problems = classify(case, work, rc, out, err, before)
    if case.check:
        problems += case.check(work, subprocess.CompletedProcess(case.argv, rc, out, err))
    lines = meaningful_lines(err)
    case.result = {"name": case.name, "area": case.area, "expect": case.expect, "rc": rc,
                   "clean": not problems, "problems": problems, "seconds": round(seconds, 1),
                   "last_line": (lines[-1] if lines else "")[:300]}


# ----------------------------------------------------------------------------------------------------- setups
def write(name: str, text: str) -> Callable[[Path], None]:
    def setup(work: Path) -> None:
        (work / name).write_text(text)
    return setup


BASE_RECIPE = (REPO / "recipes" / "mog25_siddm.yaml").read_text()
RUNS: dict[str, Path] = {}


def base_run(root: Path, kind: str = "mog") -> Path:
    """A tiny trained run (made once) that resume, sample and eval cases copy."""
    if kind in RUNS:
        return RUNS[kind]
    run = root / f"_base_{kind}"
    shutil.rmtree(run, ignore_errors=True)
    if kind == "mog":
        argv = ["-m", "gdiff.train", recipe("mog25_siddm"), *MOG, "train.checkpoint_every=10", "--run-dir", str(run)]
    else:
        argv = ["-m", "gdiff.train", recipe("digits_siddm"), *DIGITS, "--run-dir", str(run)]
    proc = subprocess.run([PY, *argv], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        sys.exit(f"base run {kind} failed:\n{proc.stderr[-3000:]}")
    RUNS[kind] = run
    return run


def copy_run(kind: str = "mog", then: Callable[[Path], None] | None = None) -> Callable[[Path], None]:
    def setup(work: Path) -> None:
        shutil.copytree(RUNS[kind], work / "run")
        if then:
            then(work / "run")
    return setup


def newest(run: Path) -> Path:
    return sorted((run / "checkpoints").glob("step_*"))[-1]


def truncate(path: Path, size: int = 60) -> None:
    path.write_bytes(path.read_bytes()[:size])


def garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, min(len(data), len(data) // 2 + 64)):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def png_folder(work: Path, n: int = 24, bad: str | None = None, depth16: bool = False) -> Path:
    import numpy as np
    from PIL import Image

    folder = work / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        if depth16:
            arr = (rng.integers(0, 65536, (8, 8))).astype(np.uint16)
            Image.fromarray(arr).save(folder / f"{i:03d}.png")
        else:
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    if bad == "truncated":
        truncate(folder / "005.png", 40)
    elif bad == "text":
        (folder / "007.png").write_text("this is not an image")
    elif bad == "pickle":
        evil_pickle(folder / "009.png")
    return folder


def image_folder_setup(**kw) -> Callable[[Path], None]:
    def setup(work: Path) -> None:
        png_folder(work, **kw)
    return setup


IMG = [*DIGITS, "data={type: image_folder, root: imgs, resolution: 8}", "train.checkpoint_every=0"]


def train(name: str, *over: str, dry: bool = False, base: list[str] = MOG) -> list[str]:
    argv = ["-m", "gdiff.train", recipe(name) if "/" not in name and not name.endswith(".yaml") else name,
            *base, *over, "--run-dir", "run"]
    return [*argv, "--dry-run"] if dry else argv


def no_run_dir(work: Path, _proc) -> list[str]:
    run = work / "run"
    return [f"run dir has {sorted(p.name for p in run.iterdir())}"] if run.is_dir() and any(run.iterdir()) else []


# ----------------------------------------------------------------------------------------------------- runners
def two_trainers(case: Case, work: Path) -> tuple[int, str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([PY, "-m", "gdiff.train", recipe("mog25_siddm"), *MOG, "train.max_steps=100000",
                              "--run-dir", "run"], cwd=work, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            if (work / "run" / "log.jsonl").exists() or first.poll() is not None:
                break
            time.sleep(0.2)
        proc = subprocess.run([PY, "-m", "gdiff.train", recipe("mog25_siddm"), *MOG, "train.max_steps=100000",
                               "--run-dir", "run"], cwd=work, capture_output=True, text=True, env=env, timeout=120)
        first_alive = first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        try:
            first.wait(60)
        except subprocess.TimeoutExpired:
            first.kill()
    err = proc.stderr + ("" if first_alive else "\n[first trainer had ended before the second started]")
    return proc.returncode, proc.stdout, err


def signal_runner(sig: int, times: int = 1) -> Callable[[Case, Path], tuple[int, str, str]]:
    def runner(case: Case, work: Path) -> tuple[int, str, str]:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        argv = [PY, "-m", "gdiff.train", recipe("mog25_siddm"), *MOG, "train.max_steps=100000",
                "train.checkpoint_every=1000000", "--run-dir", "run"]
        proc = subprocess.Popen(argv, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(600):
            if (work / "run" / "log.jsonl").exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        time.sleep(1.5)
        for _ in range(times):
            proc.send_signal(sig)
            time.sleep(0.05)
        out, err = proc.communicate(timeout=120)
        case.result["first_rc"] = proc.returncode
        return proc.returncode, out, err
    return runner


def resumes(work: Path, _proc) -> list[str]:
    ckpts = sorted((work / "run" / "checkpoints").glob("step_*"))
    if not ckpts:
        return ["no checkpoint saved"]
    steps = int(ckpts[-1].name.split("_")[1])
    proc = subprocess.run([PY, "-m", "gdiff.train", recipe("mog25_siddm"), *MOG, f"train.max_steps={steps + 5}",
                           "train.checkpoint_every=1000000", "--run-dir", "run"], cwd=work, capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0 or "Traceback" in proc.stderr:
        return [f"resume failed: exit {proc.returncode}: {meaningful_lines(proc.stderr)[-1:]}"]
    return []


def signal_check(expected_rc: int, checkpoint: bool = True) -> Callable:
    def check(work: Path, proc) -> list[str]:
        problems = []
        if proc.returncode != expected_rc:
            problems.append(f"exit {proc.returncode}, expected {expected_rc}")
        if "Traceback" in proc.stderr:
            problems.append("traceback")
        # after a second signal the last committed checkpoint, if any, must still resume
        if checkpoint or list((work / "run" / "checkpoints").glob("step_*")):
            problems += resumes(work, proc)
        return problems
    return check


def sample_ok(path: str) -> Callable:
    def check(work: Path, _proc) -> list[str]:
        return [] if (work / path).exists() else [f"{path} not written"]
    return check


# ----------------------------------------------------------------------------------------------------- cases
def cases(root: Path) -> list[Case]:
    c: list[Case] = []
    add = c.append
    # --- recipe keys: wrong types, ranges, unknown keys, scalars for sections, lists
    bad_values = [
        ("gen_width_str", "generator.width=abc", "generator.width"),
        ("gen_width_float", "generator.width=32.5", "generator.width"),
        ("gen_width_bool", "generator.width=true", "generator.width"),
        ("gen_width_null", "generator.width=null", "generator.width"),
        ("gen_width_negative", "generator.width=-5", "generator.width"),
        ("gen_width_zero", "generator.width=0", "generator.width"),
        ("gen_depth_list", "generator.depth=[1,2]", "generator.depth"),
        ("gen_zdim_str", "generator.z_dim=big", "generator.z_dim"),
        ("gen_section_scalar", "generator=5", "generator"),
        ("gen_type_unknown", "generator.type=bogus", "generator.type"),
        ("gen_unknown_key", "generator.widht=64", "widht"),
        ("disc_heads_string", "discriminator.heads=regression", "discriminator.heads"),
        ("disc_heads_unknown", "discriminator.heads=[bogus]", "bogus"),
        ("disc_width_float", "discriminator.width=10.5", "discriminator.width"),
        ("disc_pairwise_str", "discriminator.pairwise=maybe", "discriminator.pairwise"),
        ("disc_section_list", "discriminator=[1,2]", "discriminator"),
        ("section_unknown", "bogus_section.x=1", "bogus_section"),
        ("train_unknown_key", "train.max_step=5", "max_step"),
        ("train_steps_str", "train.max_steps=abc", "train.max_steps"),
        ("train_steps_negative", "train.max_steps=-1", "train.max_steps"),
        ("train_steps_float", "train.max_steps=2.5", "train.max_steps"),
        ("train_batch_zero", "train.batch_size=0", "train.batch_size"),
        ("train_batch_float", "train.batch_size=63.5", "train.batch_size"),
        ("train_ema_above_one", "train.ema_decay=1.5", "train.ema_decay"),
        ("train_ema_str", "train.ema_decay=abc", "train.ema_decay"),
        ("train_seed_str", "train.seed=abc", "train.seed"),
        ("train_ckpt_every_negative", "train.checkpoint_every=-3", "train.checkpoint_every"),
        ("train_keep_zero", "train.keep_checkpoints=0", "train.keep_checkpoints"),
        ("train_threads_zero", "train.threads=-1", "train.threads"),
        ("train_trackers_string", "train.trackers=tensorboard", "train.trackers"),
        ("train_trackers_unknown", "train.trackers=[bogus]", "bogus"),
        ("train_section_scalar", "train=7", "train"),
        ("train_mixed_precision_bad", "train.mixed_precision=fp7", "train.mixed_precision"),
        ("optim_lr_negative", "optim.lr_g=-1", "optim.lr_g"),
        ("optim_lr_str", "optim.lr_g=fast", "optim.lr_g"),
        ("optim_betas_scalar", "optim.betas=0.5", "optim.betas"),
        ("optim_betas_short", "optim.betas=[0.5]", "optim.betas"),
        ("optim_betas_range", "optim.betas=[0.5,2.0]", "optim.betas"),
        ("optim_unknown", "optim.momentum=0.9", "momentum"),
        ("diff_steps_zero", "diffusion.num_steps=0", "diffusion.num_steps"),
        ("diff_steps_float", "diffusion.num_steps=2.5", "diffusion.num_steps"),
        ("diff_schedule_unknown", "diffusion.schedule=bogus", "diffusion.schedule"),
        ("diff_section_scalar", "diffusion=cosine", "diffusion"),
        ("obj_type_unknown", "objective.type=bogus", "objective.type"),
        ("obj_weight_str", "objective.afd_weight=abc", "objective.afd_weight"),
        ("obj_weight_negative", "objective.afd_weight=-1", "objective.afd_weight"),
        ("obj_unknown_key", "objective.afd_wieght=1", "afd_wieght"),
        ("data_type_unknown", "data.type=bogus", "data.type"),
        ("data_per_mode_negative", "data.per_mode=-3", "data.per_mode"),
        ("data_normalize_str", "data.normalize=maybe", "data.normalize"),
        ("data_unknown_key", "data.colour=red", "colour"),
        ("eval_num_negative", "eval.num_samples=-1", "eval.num_samples"),
        ("eval_metrics_unknown", "eval.metrics=[bogus]", "bogus"),
        ("eval_unknown_key", "eval.bogus=1", "eval.bogus"),
        ("eval_metrics_string", "eval.metrics=fid", "eval.metrics"),
    ]
    for name, over, names in bad_values:
        add(Case(f"recipe_{name}", "recipe", train("mog25_siddm", over), names=names, check=no_run_dir))
    # documented: an exact integral float is that int (gdiff/sections.py); 0 threads keeps torch's default
    add(Case("recipe_train_batch_integral_float_ok", "recipe", train("mog25_siddm", "train.batch_size=64.0"),
             expect="ok"))
    # same failures through --dry-run
    for name, over, names in bad_values[:: 6]:
        add(Case(f"dryrun_{name}", "recipe", train("mog25_siddm", over, dry=True), names=names, check=no_run_dir))
    # build-time consistency (issue 14)
    add(Case("build_transition_objective", "recipe", train("mog25_ufogen", "generator.transition=posterior"),
             names="generator.transition", check=no_run_dir))
    add(Case("build_eps_on_cosine", "recipe", train("mog25_siddm_eps", "diffusion.schedule=cosine"),
             names="eps", check=no_run_dir))
    add(Case("build_heads_missing_denoise", "recipe",
             train("digits_siddm", "discriminator.heads=[regression]", base=DIGITS), names="heads", check=no_run_dir))
    add(Case("build_stddev_group", "recipe", train("digits_ddgan", "discriminator={type: ddgan_small, channels: 8, "
             "t_emb_dim: 16, pairwise: true}", "train.batch_size=18", base=DIGITS), names="stddev",
             check=no_run_dir))
    add(Case("build_image_metric_on_points", "recipe", train("mog25_siddm", "eval.metrics=[fid]"), names="fid",
             check=no_run_dir))
    # overrides malformed
    for name, over, names in [("no_equals", "train.max_steps", "train.max_steps"),
                              ("empty_key", "=5", "=5"),
                              ("double_dot", "train..max_steps=5", "train..max_steps"),
                              ("yaml_error_value", "train.max_steps=[1,", "train.max_steps"),
                              ("into_scalar", "train.max_steps.x=1", "train.max_steps"),
                              ("tag_in_value", "train.seed=!!python/object/apply:os.system [touch PWNED_MARKER]",
                               "train.seed")]:
        add(Case(f"override_{name}", "override", train("mog25_siddm", over), names=names, check=no_run_dir))
    # YAML files
    yaml_cases = [
        ("syntax_error", "data: {type: mog25\n", "bad.yaml"),
        ("python_tag", "data: !!python/object/apply:os.system ['touch PWNED_MARKER']\n", "bad.yaml"),
        ("top_level_list", "- 1\n- 2\n", "bad.yaml"),
        ("empty_file", "", "bad.yaml"),
        ("not_utf8", None, "bad.yaml"),
        ("alias_bomb", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                       "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                       "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
                       "i: [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n", "bad.yaml"),
        ("extends_missing", "extends: nowhere.yaml\ntrain: {max_steps: 5}\n", "nowhere.yaml"),
        ("extends_self", "extends: bad.yaml\n", "bad.yaml"),
        ("extends_int", "extends: 5\n", "extends"),
        ("extends_list_missing", "extends: [a.yaml, b.yaml]\n", ".yaml"),
        ("duplicate_key", BASE_RECIPE + "train: {max_steps: 3}\n", "train"),
        ("unknown_top_key", BASE_RECIPE + "trian: {max_steps: 3}\n", "trian"),
        ("section_is_string", BASE_RECIPE.replace("objective: {type: siddm, afd_weight: 1.0}", "objective: siddm"),
         "objective"),
    ]
    for name, text, names in yaml_cases:
        def setup(work: Path, text=text, name=name) -> None:
            if name == "not_utf8":
                (work / "bad.yaml").write_bytes(b"data: {type: \xff\xfe\x00mog25}\n")
            else:
                (work / "bad.yaml").write_text(text)
        add(Case(f"yaml_{name}", "yaml", ["-m", "gdiff.train", "bad.yaml", *MOG, "--run-dir", "run"], names=names,
                 setup=setup, check=no_run_dir, timeout=120))

    def deep_chain(work: Path) -> None:
        for i in range(1500):
            (work / f"r{i}.yaml").write_text(f"extends: r{i + 1}.yaml\n" if i < 1499 else BASE_RECIPE)
    add(Case("yaml_extends_depth_1500", "yaml", ["-m", "gdiff.train", "r0.yaml", *MOG, "--run-dir", "run"],
             names="extends", setup=deep_chain, check=no_run_dir))

    def cycle(work: Path) -> None:
        (work / "a.yaml").write_text("extends: b.yaml\n")
        (work / "b.yaml").write_text("extends: a.yaml\n")
    add(Case("yaml_extends_cycle", "yaml", ["-m", "gdiff.train", "a.yaml", *MOG, "--run-dir", "run"],
             names=".yaml", setup=cycle, check=no_run_dir))
    add(Case("recipe_file_missing", "yaml", ["-m", "gdiff.train", "missing.yaml", "--run-dir", "run"],
             names="missing.yaml", check=no_run_dir))
    add(Case("recipe_path_is_folder", "yaml", ["-m", "gdiff.train", ".", "--run-dir", "run"], names=".",
             check=no_run_dir))
    add(Case("dryrun_yaml_python_tag", "yaml", ["-m", "gdiff.train", "bad.yaml", "--dry-run"], names="bad.yaml",
             setup=write("bad.yaml", "data: !!python/object/apply:os.system ['touch PWNED_MARKER']\n")))
    # --- data
    add(Case("data_folder_missing", "data", train("digits_siddm", "data={type: image_folder, root: nowhere, "
             "resolution: 8}", base=DIGITS), names="nowhere", check=no_run_dir))
    add(Case("data_folder_empty", "data", train("digits_siddm", base=IMG), names="imgs",
             setup=lambda w: (w / "imgs").mkdir(), check=no_run_dir))
    add(Case("data_truncated_png", "data", train("digits_siddm", base=IMG), names="005.png",
             setup=image_folder_setup(bad="truncated"), check=no_run_dir))
    add(Case("data_text_as_png", "data", train("digits_siddm", base=IMG), names="007.png",
             setup=image_folder_setup(bad="text"), check=no_run_dir))
    add(Case("data_pickle_as_png", "data", train("digits_siddm", base=IMG), names="009.png",
             setup=image_folder_setup(bad="pickle"), check=no_run_dir))
    add(Case("data_truncated_png_skip", "data", train("digits_siddm", "data.on_bad_file=skip", base=IMG),
             expect="ok", names="005.png", setup=image_folder_setup(bad="truncated")))
    add(Case("data_on_bad_file_unknown", "data", train("digits_siddm", "data.on_bad_file=ignore", base=IMG),
             names="on_bad_file", setup=image_folder_setup(), check=no_run_dir))
    add(Case("data_png_16bit", "data", train("digits_siddm", base=IMG), expect="ok",
             setup=image_folder_setup(depth16=True)))
    add(Case("data_resolution_str", "data", train("digits_siddm", "data.resolution=big", base=IMG),
             names="resolution", setup=image_folder_setup(), check=no_run_dir))
    add(Case("data_resolution_float", "data", train("digits_siddm", "data.resolution=8.5", base=IMG),
             names="resolution", setup=image_folder_setup(), check=no_run_dir))
    add(Case("data_root_is_file", "data", train("digits_siddm", "data.root=f.txt", base=IMG),
             names="f.txt", setup=write("f.txt", "x"), check=no_run_dir))

    def cifar_setup(kind: str) -> Callable[[Path], None]:
        def setup(work: Path) -> None:
            folder = work / "cifar"
            folder.mkdir()
            for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
                if kind == "pickle":
                    evil_pickle(folder / f)
                else:
                    (folder / f).write_bytes(b"\x80\x02}q\x00(X\x04\x00\x00\x00data" + b"\xff" * 20)
        return setup
    cifar = [*DIGITS, "data={type: cifar10, root: cifar}", "train.checkpoint_every=0"]
    add(Case("data_cifar_hostile_pickle", "data", train("digits_siddm", base=cifar), names="data_batch_1",
             setup=cifar_setup("pickle"), check=no_run_dir))
    add(Case("data_cifar_garbled", "data", train("digits_siddm", base=cifar), names="data_batch_1",
             setup=cifar_setup("garbled"), check=no_run_dir))

    def imagenet_setup(work: Path) -> None:
        folder = work / "inet"
        folder.mkdir()
        for f in [f"train_data_batch_{i}.npz" for i in range(1, 11)] + ["val_data.npz"]:
            (folder / f).write_bytes(b"not a zip file at all")
    add(Case("data_imagenet_not_zip", "data", train("digits_siddm", base=[*DIGITS, "data={type: imagenet64, "
             "root: inet}", "train.checkpoint_every=0"]), names="inet", setup=imagenet_setup, check=no_run_dir))
    # --- run directories (copies of a tiny trained run: checkpoints at steps 10 and 20)
    resume = train("mog25_siddm", "train.max_steps=25", "train.checkpoint_every=10")

    add(Case("run_resume_same_recipe", "rundir", resume, expect="ok", setup=copy_run()))
    add(Case("run_changed_recipe", "rundir", train("mog25_siddm", "optim.lr_g=1e-4", "train.max_steps=25"),
             names="optim.lr_g", setup=copy_run()))
    add(Case("run_changed_recipe_no_recipe_yaml", "rundir", train("mog25_siddm", "optim.lr_g=1e-4",
             "train.max_steps=25"), names="optim.lr_g", setup=copy_run(then=lambda r: (r / "recipe.yaml").unlink())))
    add(Case("run_changed_network_no_recipe_yaml", "rundir", train("mog25_siddm", "generator.width=128",
             "train.max_steps=25"), names="generator.width",
             setup=copy_run(then=lambda r: (r / "recipe.yaml").unlink())))
    add(Case("run_recipe_yaml_garbled", "rundir", resume, names="recipe.yaml",
             setup=copy_run(then=lambda r: (r / "recipe.yaml").write_text("data: {type: [\n"))))
    add(Case("run_ckpt_weights_deleted", "rundir", resume, expect="ok", names="step_000000020",
             setup=copy_run(then=lambda r: (newest(r) / "model.safetensors").unlink())))
    add(Case("run_ckpt_weights_truncated", "rundir", resume, expect="ok", names="step_000000020",
             setup=copy_run(then=lambda r: truncate(newest(r) / "model.safetensors"))))
    add(Case("run_ckpt_weights_garbled", "rundir", resume, expect="ok", names="step_000000020",
             setup=copy_run(then=lambda r: garble(newest(r) / "model_1.safetensors"))))
    add(Case("run_ckpt_ema_truncated", "rundir", resume, expect="ok", names="step_000000020",
             setup=copy_run(then=lambda r: truncate(newest(r) / "ema.safetensors"))))
    add(Case("run_ckpt_rng_deleted", "rundir", resume, expect="ok", names="random_states_0.pkl",
             setup=copy_run(then=lambda r: (newest(r) / "random_states_0.pkl").unlink())))
    add(Case("run_ckpt_manifest_garbled", "rundir", resume, expect="ok", names="manifest",
             setup=copy_run(then=lambda r: (newest(r) / "manifest.json").write_text("{not json"))))
    add(Case("run_ckpt_state_json_garbled", "rundir", resume, expect="ok", names="trainer_state.json",
             setup=copy_run(then=lambda r: (newest(r) / "trainer_state.json").write_text("{\"step\": "))))

    def all_damaged(run: Path) -> None:
        for ck in (run / "checkpoints").glob("step_*"):
            truncate(ck / "model.safetensors")
    add(Case("run_all_ckpts_damaged", "rundir", resume, names="model.safetensors", setup=copy_run(then=all_damaged)))
    add(Case("run_stray_step_backup", "rundir", resume, expect="ok",
             setup=copy_run(then=lambda r: shutil.copytree(newest(r), r / "checkpoints" / "step_backup"))))

    def evil_optimizer(run: Path) -> None:
        ck = newest(run)
        evil_torch(ck / "optimizer.bin")
        manifest = json.loads((ck / "manifest.json").read_text())
        data = (ck / "optimizer.bin").read_bytes()
        manifest["files"]["optimizer.bin"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        (ck / "manifest.json").write_text(json.dumps(manifest))
    add(Case("run_ckpt_hostile_optimizer_forged_manifest", "rundir", resume, names="step_000000020",
             setup=copy_run(then=evil_optimizer)))
    add(Case("run_ckpt_hostile_rng_pickle", "rundir", resume, expect="ok", names="step_000000020",
             setup=copy_run(then=lambda r: evil_pickle(newest(r) / "random_states_0.pkl"))))
    add(Case("run_ckpt_planted_custom_pkl", "rundir", resume, expect="ok", names="custom_checkpoint_0.pkl",
             setup=copy_run(then=lambda r: evil_pickle(newest(r) / "custom_checkpoint_0.pkl"))))
    add(Case("run_dir_is_a_file", "rundir", train("mog25_siddm"), names="run", setup=write("run", "I am a file")))
    add(Case("run_dir_unwritable", "rundir", ["-m", "gdiff.train", recipe("mog25_siddm"), *MOG, "--run-dir",
             "/proc/gdiff_run"], names="/proc/gdiff_run"))
    add(Case("run_dir_under_a_file", "rundir", ["-m", "gdiff.train", recipe("mog25_siddm"), *MOG, "--run-dir",
             "f/run"], names="f", setup=write("f", "x")))
    add(Case("run_two_trainers", "rundir", [], names="PID", runner=two_trainers, ignore_writes=True))

    def users_recipe(work: Path) -> None:
        (work / "run").mkdir()
        (work / "run" / "recipe.yaml").write_text(
            f"# my notes\nextends: {recipe('mog25_siddm')}\ndata: {{per_mode: 50}}\n"
            "train: {max_steps: 20, batch_size: 64, trackers: [], threads: 1}\neval: {num_samples: 200}\n")
    add(Case("run_users_recipe_kept", "rundir", ["-m", "gdiff.train", "run/recipe.yaml", "--run-dir", "run"],
             expect="ok", setup=users_recipe,
             check=lambda w, p: [] if (w / "run" / "recipe.yaml").read_text().startswith("# my notes")
             else ["user's recipe.yaml replaced"]))
    # --- generator folders and gdiff.sample
    sample = ["-m", "gdiff.sample", "run/generator", "--num", "50", "--out", "s.npz", "--device", "cpu"]
    add(Case("sample_ok_npz", "sample", sample, expect="ok", setup=copy_run(), check=sample_ok("s.npz")))
    add(Case("sample_run_dir_ok", "sample", ["-m", "gdiff.sample", "run", "--num", "50", "--out", "s.npz"],
             expect="ok", setup=copy_run(), check=sample_ok("s.npz")))
    gen_faults = [
        ("config_missing", lambda r: (r / "generator" / "config.json").unlink(), "config.json"),
        ("weights_missing", lambda r: (r / "generator" / "model.safetensors").unlink(), "model.safetensors"),
        ("weights_truncated", lambda r: truncate(r / "generator" / "model.safetensors"), "model.safetensors"),
        ("weights_garbled_header", lambda r: (r / "generator" / "model.safetensors").write_bytes(
            b"\xff" * 8 + b"{garbage" * 10), "model.safetensors"),
        ("weights_pickle", lambda r: evil_torch(r / "generator" / "model.safetensors"), "model.safetensors"),
        ("weights_foreign_keys", lambda r: __import__("safetensors.torch").torch.save_file(
            {"foo": __import__("torch").zeros(3)}, str(r / "generator" / "model.safetensors")), "model.safetensors"),
        ("config_not_json", lambda r: (r / "generator" / "config.json").write_text("{oops"), "config.json"),
        ("config_foreign_json", lambda r: (r / "generator" / "config.json").write_text(
            json.dumps({"_class_name": "UNet2DModel", "sample_size": 32})), "config.json"),
        ("config_list", lambda r: (r / "generator" / "config.json").write_text("[1, 2]"), "config.json"),
        ("config_wrong_type", lambda r: (r / "generator" / "config.json").write_text(
            (r / "generator" / "config.json").read_text().replace('"toy_generator"', '"bogus_net"')), "config.json"),
        ("config_binary", lambda r: (r / "generator" / "config.json").write_bytes(b"\xff\xfe\x00\x01"),
         "config.json"),
        ("config_is_folder", lambda r: ((r / "generator" / "config.json").unlink(),
                                        (r / "generator" / "config.json").mkdir()), "config.json"),
    ]
    for name, fault, names in gen_faults:
        add(Case(f"gen_{name}", "generator", sample, names=names, setup=copy_run(then=fault)))
    add(Case("gen_folder_missing", "generator", ["-m", "gdiff.sample", "nowhere/gen", "--num", "5", "--out", "s.npz"],
             names="nowhere/gen"))
    add(Case("gen_mistyped_run_path", "generator", ["-m", "gdiff.sample", "runs/mog25_sidm", "--num", "5", "--out",
             "s.npz"], names="runs/mog25_sidm", setup=lambda w: (w / "runs").mkdir(), online=True, timeout=120))
    add(Case("gen_empty_folder", "generator", ["-m", "gdiff.sample", "gen", "--num", "5", "--out", "s.npz"],
             names="gen", setup=lambda w: (w / "gen").mkdir()))
    add(Case("gen_path_is_pickle_file", "generator", ["-m", "gdiff.sample", "netG.pth", "--num", "5", "--out",
             "s.npz"], names="netG.pth", setup=lambda w: evil_torch(w / "netG.pth")))
    # outputs
    for name, out, names, setup in [
        ("out_tiff", "x.tiff", "x.tiff", copy_run()),
        ("out_unwritable", "/proc/x.npz", "/proc", copy_run()),
        ("out_under_file", "f/x.npz", "f", copy_run(then=lambda r: (r.parent / "f").write_text("x"))),
        ("out_npz_is_folder", "d.npz", "d.npz", copy_run(then=lambda r: (r.parent / "d.npz").mkdir())),
        ("out_folder_is_file", "pngs", "pngs", copy_run(then=lambda r: (r.parent / "pngs").write_text("x"))),
        ("out_png_for_points", "grid.png", "npz", copy_run()),
    ]:
        add(Case(f"sample_{name}", "outputs", ["-m", "gdiff.sample", "run", "--num", "50", "--out", out],
                 names=names, setup=setup))
    for name, extra, names in [("num_zero", ["--num", "0"], "--num"), ("steps_zero", ["--steps", "0"], "steps"),
                               ("steps_negative", ["--steps", "-2"], "steps"),
                               ("labels_str", ["--labels", "abc"], "labels"),
                               ("labels_unconditional", ["--labels", "3"], "labels"),
                               ("sampler_unknown", ["--sampler", "euler"], "sampler"),
                               ("batch_str", ["--batch-size", "lots"], "batch-size"),
                               ("eta_nan", ["--eta", "nan", "--sampler", "ddim"], "eta")]:
        argv = ["-m", "gdiff.sample", "run", "--out", "s.npz", *extra]
        if "--num" not in extra:
            argv += ["--num", "20"]
        add(Case(f"sample_{name}", "outputs", argv, names=names, setup=copy_run()))
    # --- eval
    ev = ["-m", "gdiff.eval", "run", "--num", "200", "--batch-size", "100"]
    add(Case("eval_mixture_ok", "eval", ev, expect="ok", setup=copy_run(), check=sample_ok("run")))
    add(Case("eval_metrics_unknown", "eval", [*ev, "--metrics", "bogus"], names="bogus", setup=copy_run()))
    add(Case("eval_out_txt", "eval", [*ev, "--out", "r.txt"], names="r.txt", setup=copy_run()))
    add(Case("eval_out_unwritable", "eval", [*ev, "--out", "/proc/r.json"], names="/proc", setup=copy_run()))
    add(Case("eval_out_is_folder", "eval", [*ev, "--out", "r.json"], names="r.json",
             setup=copy_run(then=lambda r: (r.parent / "r.json").mkdir())))
    add(Case("eval_run_missing", "eval", ["-m", "gdiff.eval", "nowhere", "--num", "10"], names="nowhere"))
    add(Case("eval_generator_folder_only", "eval", ["-m", "gdiff.eval", "run/generator", "--num", "10"],
             names="recipe.yaml", setup=copy_run()))
    add(Case("eval_run_recipe_deleted", "eval", ev, names="recipe.yaml",
             setup=copy_run(then=lambda r: (r / "recipe.yaml").unlink())))
    dev = ["-m", "gdiff.eval", "run", "--num", "64", "--batch-size", "64", "--metrics", "fid"]
    add(Case("eval_inception_hostile", "eval", [*dev, "--inception-weights", "evil.pth"], names="evil.pth",
             setup=copy_run("digits", then=lambda r: evil_torch(r.parent / "evil.pth"))))
    add(Case("eval_inception_missing", "eval", [*dev, "--inception-weights", "none.pth"], names="none.pth",
             setup=copy_run("digits")))
    add(Case("eval_inception_truncated", "eval", [*dev, "--inception-weights", "t.pth"], names="t.pth",
             setup=copy_run("digits", then=lambda r: (r.parent / "t.pth").write_bytes(b"PK\x03\x04garbage"))))
    add(Case("eval_vgg_hostile", "eval", [*dev.__getitem__(slice(0, -1)), "prc", "--vgg16-weights", "evil.pth"],
             names="evil.pth", setup=copy_run("digits", then=lambda r: evil_torch(r.parent / "evil.pth"))))
    add(Case("eval_cache_dir_is_file", "eval", [*dev, "--feature-extractor", "digits", "--cache-dir", "c"],
             names="c", setup=copy_run("digits", then=lambda r: (r.parent / "c").write_text("x"))))

    def hostile_cache(run: Path) -> None:
        cache = run.parent / "cache"
        cache.mkdir()
        for name in ("stats.npz", "stats.pkl", "fidelity_cache.pt"):
            evil_torch(cache / name)
    add(Case("eval_hostile_files_in_cache", "eval", [*dev[:-1], "fid", "--feature-extractor", "digits",
             "--cache-dir", "cache"], expect="ok", setup=copy_run("digits", then=hostile_cache)))
    add(Case("eval_ref_missing", "eval", [*dev, "--feature-extractor", "digits", "--ref", "nowhere"],
             names="nowhere", setup=copy_run("digits")))
    add(Case("eval_feature_extractor_module", "eval", [*dev, "--feature-extractor", "os:system"],
             names="feature", setup=copy_run("digits")))
    # --- convert
    conv = ["-m", "gdiff.convert", "ddgan", "netG.pth", "--recipe", recipe("cifar10_ddgan"), "--out", "out"]
    add(Case("convert_hostile_pickle", "convert", conv, names="netG.pth", setup=lambda w: evil_torch(w / "netG.pth")))
    add(Case("convert_plain_pickle", "convert", conv, names="netG.pth", setup=lambda w: evil_pickle(w / "netG.pth")))
    add(Case("convert_missing", "convert", conv, names="netG.pth"))
    add(Case("convert_garbage", "convert", conv, names="netG.pth", setup=write("netG.pth", "garbage")))
    add(Case("convert_recipe_missing", "convert", ["-m", "gdiff.convert", "ddgan", "netG.pth", "--recipe", "no.yaml",
             "--out", "out"], names="no.yaml", setup=lambda w: evil_torch(w / "netG.pth")))
    add(Case("convert_foreign_weights", "convert", conv, names="netG.pth",
             setup=lambda w: __import__("torch").save({"foo": __import__("torch").zeros(3)}, w / "netG.pth")))
    add(Case("convert_out_is_file", "convert", conv, names="out", setup=lambda w: (
        __import__("torch").save({"foo": __import__("torch").zeros(3)}, w / "netG.pth"), (w / "out").write_text("x"))))
    # --- autoencoders
    ae = recipe("autoencoders/autoencoder_digits")
    for name, over, names in [("unknown_key", "train.bogus=1", "bogus"), ("width_str", "train.max_steps=abc",
                              "train.max_steps"), ("section_scalar", "model=3", "model")]:
        add(Case(f"ae_{name}", "autoencoder", ["-m", "gdiff.autoencoders.train", ae, over, "--run-dir", "run"],
                 names=names, check=no_run_dir))
    add(Case("ae_recipe_missing", "autoencoder", ["-m", "gdiff.autoencoders.train", "no.yaml", "--run-dir", "run"],
             names="no.yaml", check=no_run_dir))
    add(Case("ae_python_tag", "autoencoder", ["-m", "gdiff.autoencoders.train", "bad.yaml", "--run-dir", "run"],
             names="bad.yaml", setup=write("bad.yaml", "model: !!python/object/apply:os.system ['touch "
                                                         "PWNED_MARKER']\n"), check=no_run_dir))
    # latent recipe whose autoencoder folder is hostile
    def evil_ae(work: Path) -> None:
        (work / "ae").mkdir()
        (work / "ae" / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
        evil_torch(work / "ae" / "diffusion_pytorch_model.bin")
    add(Case("latent_autoencoder_hostile_bin", "data", train("digits_latent_siddm", "data.transform.autoencoder=ae",
             base=DIGITS), names="ae", setup=evil_ae, check=no_run_dir))
    # --- signals
    add(Case("signal_sigterm", "signals", [], expect="signal", runner=signal_runner(signal.SIGTERM),
             check=signal_check(0)))
    add(Case("signal_sigint", "signals", [], expect="signal", runner=signal_runner(signal.SIGINT),
             check=signal_check(130)))
    add(Case("signal_double_sigterm", "signals", [], expect="signal", runner=signal_runner(signal.SIGTERM, 2),
             check=signal_check(143, checkpoint=False)))
    return c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/gdiff-battery"))
    parser.add_argument("--only", default=None, help="run the cases whose name contains this")
    parser.add_argument("--start", default=None, help="skip the cases before the one of this name")
    parser.add_argument("--json", type=Path, default=None, help="write every case's result here")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    base_run(args.work, "mog")
    base_run(args.work, "digits")
    todo = [case for case in cases(args.work) if not args.only or args.only in case.name]
    if args.start:
        todo = todo[[case.name for case in todo].index(args.start):]
    start = time.perf_counter()
    for case in todo:
        run_case(case, args.work)
        r = case.result
        flag = "clean" if r["clean"] else "NOT CLEAN: " + "; ".join(r["problems"])
        print(f"{r['name']:48s} rc={r['rc']:<4} {r['seconds']:5.1f}s {flag}\n    {r['last_line'][:200]}", flush=True)
    clean = sum(case.result["clean"] for case in todo)
    print(f"\n{clean} / {len(todo)} clean in {time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
            "cpus": os.cpu_count(), "python": sys.version.split()[0], "clean": clean, "tried": len(todo),
            "cases": [case.result for case in todo]}, indent=1))


if __name__ == "__main__":
    main()
