"""Atomic checkpoints of a run directory.

``RUN/checkpoints/step_000100/`` holds Accelerate's full training state (networks, optimisers, RNG, EMA,
step). A checkpoint is written to a temporary directory and renamed into place, so an interrupted save never
leaves a half-written checkpoint; the newest complete one is found by name. ``RUN/generator_ema.safetensors``
(the EMA generator, what sampling uses) is replaced atomically as well.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
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


def save_atomically(run_dir: Path, step: int, write: Callable[[Path], None], keep: int) -> Path:
    """Call ``write(tmp_dir)`` then rename tmp_dir to ``step_{step:09d}``; keep the newest ``keep``."""
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:09d}"
    tmp = root / f".tmp-{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    done = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))
    for old in done[: max(len(done) - keep, 0)]:
        shutil.rmtree(old)
    return final


def save_tensors_atomically(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """safetensors file written beside its destination, then renamed over it."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)
