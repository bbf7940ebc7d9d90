"""SIGTERM / SIGINT: the first one asks the run to stop after the current step (every rank: real signals to
real runs on one and two gloo processes), the checkpoint is saved, the exit is clean; the second ends it at
once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from accelerate import Accelerator

from gdiff import checkpoints
from gdiff.interrupt import StopOnSignal, exit_status
from tests.test_trainer import TINY

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_the_first_signal_is_a_request(sig, status):
    before = signal.getsignal(sig)
    with StopOnSignal(Accelerator(cpu=True)) as stop:
        assert not stop.requested()
        os.kill(os.getpid(), sig)  # delivered to this (main) thread before the next bytecode
        assert stop.received == sig and stop.requested()
    assert signal.getsignal(sig) is before
    assert exit_status(stop.received) == status and exit_status(None) == 0


def test_a_second_signal_exits_at_once():
    code = ("import os, signal, time\n"
            "from accelerate import Accelerator\n"
            "from gdiff.interrupt import StopOnSignal\n"
            "with StopOnSignal(Accelerator(cpu=True)):\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    time.sleep(30)\n"
            "print('not reached')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and proc.stdout == ""
    assert "SIGTERM again: exiting now" in proc.stderr and "Traceback" not in proc.stderr


def _start(tmp_path, launcher: list[str], **env: str) -> tuple[subprocess.Popen, Path]:
    """Start a long tiny SIDDM run and return once it has logged a step (its process, its run directory)."""
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "max_steps": 100_000, "log_every": 5}}))
    run = tmp_path / "run"
    proc = subprocess.Popen([*launcher, "-m", "gdiff.train", str(recipe), "--run-dir", str(run)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
    deadline = time.monotonic() + 120
    while not (run / "log.jsonl").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    return proc, run


def _stopped_cleanly(proc: subprocess.Popen, run: Path, status: int, ranks: int) -> None:
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    assert "Traceback" not in err and "stopping after this step with a checkpoint" in err
    saved = checkpoints.select(run)  # intact
    step = checkpoints.step_of(saved)
    assert 0 < step < 100_000 and json.loads((saved / "trainer_state.json").read_text())["step"] == step
    assert {f"random_states_{r}.pkl" for r in range(ranks)} <= {p.name for p in saved.iterdir()}
    assert json.loads((run / "log.jsonl").read_text().splitlines()[-1])["step"] == step
    assert not (run / "metrics.json").exists()  # stopped early: no final evaluation


def test_sigint_saves_a_checkpoint_and_exits_130(tmp_path):
    proc, run = _start(tmp_path, [sys.executable])
    proc.send_signal(signal.SIGINT)
    _stopped_cleanly(proc, run, 130, ranks=1)


def test_sigterm_to_one_of_two_ranks_stops_both_after_the_same_step(tmp_path):
    """Only rank 1 gets the signal; Accelerate's trigger makes rank 0 stop after the same step (were it to go on,
    the collective save, and this test, would hang)."""
    proc, run = _start(tmp_path, [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
                                  "--num_processes", "2", "--main_process_port", "29563"], ACCELERATE_USE_CPU="1")
    ranks = {int(p.environ()["RANK"]): p for p in psutil.Process(proc.pid).children()}
    ranks[1].send_signal(signal.SIGTERM)
    _stopped_cleanly(proc, run, 0, ranks=2)


def test_several_ranks_ask_each_other_only_at_log_steps(monkeypatch):
    """The collective question (an all-reduce and a host read) is put only every ``every`` steps."""
    accelerator = Accelerator(cpu=True)
    asked = []
    monkeypatch.setattr(type(accelerator), "num_processes", property(lambda self: 2))
    monkeypatch.setattr(accelerator, "check_trigger", lambda: asked.append(True) or True)
    stop = StopOnSignal(accelerator, every=5)
    assert [stop.requested(step) for step in range(1, 11)] == [False] * 4 + [True] + [False] * 4 + [True]
    assert len(asked) == 2
