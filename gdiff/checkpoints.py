"""Verified, atomic checkpoints of a run directory.

``RUN/checkpoints/step_000000100/`` holds the full training state: Accelerate's networks (safetensors),
optimisers and RNG state of every process (``torch.load(weights_only=True)`` files), the EMA as safetensors,
step and data position as JSON, the resolved recipe as YAML, and last ``manifest.json``::

    {"format": 1, "files": {"<name>": {"size": <bytes>, "sha256": "<hex>"}, ...}}

listing every other file of the folder. A checkpoint is written into ``.tmp-step_<N>/``; :func:`commit` writes
the manifest, flushes every file to disk and renames the folder to ``step_<N>`` (one atomic ``rename``), so a
save killed at any point leaves the previous checkpoints as they were. :func:`select` picks the newest
checkpoint whose files all match its manifest (missing, truncated, changed or unlisted files are damage) and
names the damaged ones it skipped. Folders whose names are not ``step_`` and 9 digits are not checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import sys
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gdiff import recipes

PREFIX = "step_"
NAME = re.compile(r"step_\d{9}")
MANIFEST = "manifest.json"
RECIPE = "recipe.yaml"
RNG_STATE = "random_states_{rank}.pkl"  # Accelerate's name for the RNG state of process ``rank``


class RunError(ValueError):
    """The run directory cannot be used as asked (in use, damaged, another recipe): the CLIs print one
    ``error:`` line and exit 2."""


def warn(message: str) -> None:
    """One ``warning:`` line on stderr (what the CLIs print for a fallback they took)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def committed(run_dir: Path) -> list[Path]:
    """The committed checkpoint folders of a run, oldest first (names ``step_`` + 9 digits only)."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if NAME.fullmatch(p.name) and p.is_dir())


def latest(run_dir: Path) -> Path | None:
    """The newest committed checkpoint of a run (not verified: see :func:`select`), or None."""
    done = committed(run_dir)
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


def _files(folder: Path) -> list[str]:
    """Relative POSIX names of the regular files under ``folder`` except the manifest, sorted."""
    names = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink())
    return sorted(n for n in names if n != MANIFEST)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
        os.fsync(f.fileno())  # the bytes hashed are the bytes on disk before the commit's rename
    return digest.hexdigest()


def write_manifest(folder: Path) -> dict:
    """Hash every file of ``folder`` into ``folder/manifest.json`` (written last, flushed); returns it."""
    folder = Path(folder)
    manifest = {"format": 1, "files": {name: {"size": (folder / name).stat().st_size,
                                              "sha256": _sha256(folder / name)} for name in _files(folder)}}
    with (folder / MANIFEST).open("w") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    return manifest


def damage(folder: Path) -> list[str]:
    """What is wrong with a checkpoint folder, one phrase per file ([] when every file matches its manifest)."""
    folder = Path(folder)
    try:
        listed = json.loads((folder / MANIFEST).read_text())["files"]
        if not isinstance(listed, dict):
            raise TypeError("'files' is not a mapping")
    except FileNotFoundError:
        return [f"{MANIFEST} missing"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        return [f"{MANIFEST} unreadable ({err})"]
    problems = [f"{name} not in the manifest" for name in _files(folder) if name not in listed]
    for name, entry in listed.items():
        path = folder / name
        try:
            size, expected = int(entry["size"]), str(entry["sha256"])
        except (KeyError, TypeError, ValueError):
            problems.append(f"{MANIFEST} entry of {name} unreadable")
            continue
        if not path.is_file():
            problems.append(f"{name} missing")
        elif path.stat().st_size != size:
            problems.append(f"{name} has {path.stat().st_size} bytes, not {size}")
        elif _sha256(path) != expected:
            problems.append(f"{name} changed (SHA-256 differs)")
    return problems


def load_error(err: BaseException) -> str:
    """One line for an error of ``accelerator.load_state``. torch's weights-only refusal (an UnpicklingError over
    several lines) becomes the global it refused, without its advice to retry with ``weights_only=False`` (the file
    may be crafted); any other error keeps its lines, joined."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
    if isinstance(err, pickle.UnpicklingError):
        refused = next((line for line in lines if "GLOBAL" in line), lines[0])
        return f"a file in it is refused by torch.load(weights_only=True), which runs no code: {refused}"
    return " ".join(lines)


def select(run_dir: Path, world_size: int = 1) -> Path | None:
    """The newest intact checkpoint of a run (None when there is none at all).

    Damaged newer checkpoints are skipped with a warning naming their damaged files; RunError when checkpoints
    exist but none is intact. A chosen checkpoint without the RNG state of one of the ``world_size`` processes
    is used with a warning that the resumed run is no longer bit-identical to an uninterrupted one.
    """
    found = committed(run_dir)
    skipped = []
    for folder in reversed(found):
        problems = damage(folder)
        if not problems:
            break
        skipped.append(f"{folder}: {'; '.join(problems)}")
    else:
        if found:
            raise RunError(f"no intact checkpoint to resume from in {checkpoint_dir(run_dir)}: "
                           + " | ".join(skipped) + "; move the damaged folders away to start afresh")
        return None
    for line in skipped:
        warn(f"damaged checkpoint skipped: {line}")
    listed = json.loads((folder / MANIFEST).read_text())["files"]
    lost = [RNG_STATE.format(rank=r) for r in range(world_size) if RNG_STATE.format(rank=r) not in listed]
    if lost:
        warn(f"{folder} has no {', '.join(lost)}: those processes resume with fresh random states, so this run "
             f"is NOT bit-identical to an uninterrupted one (resume with the world size that saved it)")
    return folder


def write_recipe(folder: Path, recipe: recipes.Recipe) -> None:
    """The resolved recipe as ``folder/recipe.yaml``: a resumed run is checked against it (gdiff/rundir.py)."""
    (Path(folder) / RECIPE).write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))


def commit(staged: Path, keep: int) -> Path:
    """Seal a fully written staging directory with its manifest, rename it to ``step_NNNNNNNNN`` (atomic), keep
    the newest ``keep`` checkpoints and remove the staging folders of saves that were killed (the run directory's
    lock guarantees that no other save is under way)."""
    write_manifest(staged)
    final = staged.with_name(staged.name.removeprefix(".tmp-"))
    if final.exists():
        shutil.rmtree(final)
    os.replace(staged, final)
    _fsync_dir(final.parent)
    done = committed(final.parent.parent)
    stale = [p for p in final.parent.glob(f".tmp-{PREFIX}*") if NAME.fullmatch(p.name.removeprefix(".tmp-"))]
    for old in [*done[: max(len(done) - keep, 0)], *stale]:
        shutil.rmtree(old)
    return final


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_tensors_atomically(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """safetensors file written beside its destination, flushed, then renamed over it."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_tensors(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; a missing, truncated or non-safetensors file is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path}: not a readable safetensors file (damaged or truncated?): {err}") from None
