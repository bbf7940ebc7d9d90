"""Atomic checkpoints of a run directory.

``RUN/checkpoints/step_000100/`` holds the full training state (Accelerate's networks, optimisers and RNG of
every process; the EMA as safetensors; step and data position as JSON: nothing is unpickled on load). A
checkpoint is written to a temporary directory and renamed into place, so an interrupted save never leaves a
half-written checkpoint; the newest complete one is found by name. ``RUN/generator_ema.safetensors``
(the EMA generator, what sampling uses) is replaced atomically as well.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

PREFIX = "step_"


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def latest(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return None
    done = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))
    return done[-1] if done else None


def step_of(path: Path) -> int:
    return int(path.name[len(PREFIX):])


def staging_dir(run_dir: Path, step: int, create: bool = True) -> Path:
    """The temporary directory to write the checkpoint of ``step`` into (then :func:`commit` it); ``create``
    empties and creates it (one process does, the others only need the path)."""
    tmp = checkpoint_dir(run_dir) / f".tmp-{PREFIX}{step:09d}"
    if create:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    return tmp


def commit(staged: Path, keep: int) -> Path:
    """Rename a fully written staging directory to ``step_NNNNNNNNN`` and keep the newest ``keep``."""
    final = staged.with_name(staged.name.removeprefix(".tmp-"))
    if final.exists():
        shutil.rmtree(final)
    os.replace(staged, final)
    done = sorted(p for p in final.parent.iterdir() if p.is_dir() and p.name.startswith(PREFIX))
    for old in done[: max(len(done) - keep, 0)]:
        shutil.rmtree(old)
    return final


def save_tensors_atomically(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """safetensors file written beside its destination, then renamed over it."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)
