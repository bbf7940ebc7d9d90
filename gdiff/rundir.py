"""The run directory's chores: the lock, the resolved recipe, per-start metadata, the log, pictures, metrics.

    RUN/.lock                   flock-ed by the main process for the whole run; holds its PID, host, start
    RUN/recipe.yaml             the resolved recipe (first line HEADER); a resumed run must match it. A
                                recipe.yaml without that header is the user's own file: never replaced
    RUN/metadata.json           {"starts": [...]}: one entry per start or resume (versions, git commit,
                                world size, device, precision, command line, start time)
    RUN/log.jsonl               one JSON record per log step (means of the loss parts since the last one)
    RUN/samples/step_*.png      grids of EMA samples from fixed noise (scatter plots for 2-D data)
    RUN/metrics.json            the final evaluation

Only the main process writes; every method but :meth:`RunDir.check` is a no-op elsewhere.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, TextIO

import torch
import yaml

from gdiff import checkpoints, recipes
from gdiff.checkpoints import RunError
from gdiff.outputs import writable_folder

LOCK = ".lock"
HEADER = "# written by gdiff: the resolved recipe of this run (a resumed run must match it)\n"
_HELD: set[TextIO] = set()  # the lock files this process holds


def _close_locks_in_child() -> None:
    """A forked child (a DataLoader worker) shares the parent's lock; closing its copy of the file (never
    unlocking it) lets the lock end with the parent's run instead of with the child."""
    for f in _HELD:
        f.close()
    _HELD.clear()


os.register_at_fork(after_in_child=_close_locks_in_child)


def _git_commit() -> str | None:
    """The commit of the gdiff checkout this code runs from (with '-dirty' if modified), or None."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def _versions() -> dict[str, str]:
    import accelerate
    import numpy

    import gdiff

    out = {"python": platform.python_version(), "gdiff": gdiff.__version__, "torch": torch.__version__,
           "accelerate": accelerate.__version__, "numpy": numpy.__version__}
    if torch.cuda.is_available():
        out["cuda"] = str(torch.version.cuda)
        out["gpu"] = torch.cuda.get_device_name()
    return out


class RunDir:
    """The run directory at ``path``; ``main`` says whether this process writes. On the main process a ``path``
    that is a file, lies under a file, or cannot be written is a ValueError here, before anything is written."""

    def __init__(self, path: str | Path, main: bool = True) -> None:
        self.path, self.main = Path(path), main
        self._lock: TextIO | None = None
        if main:
            writable_folder(self.path, "run directory")

    def stored_recipes(self) -> list[tuple[Path, recipes.Recipe]]:
        """The recipes the run already holds: RUN/recipe.yaml and each committed checkpoint's (unreadable
        checkpoint copies are skipped: the checkpoint's manifest check reports them)."""
        found = []
        if (self.path / "recipe.yaml").exists():
            try:
                found.append((self.path / "recipe.yaml", recipes.load(self.path / "recipe.yaml")))
            except (ValueError, FileNotFoundError) as err:  # FileNotFoundError: a base it extends is gone
                raise RunError(f"the run's own recipe cannot be read: {err}") from None
        for folder in checkpoints.committed(self.path):
            try:
                found.append((folder / checkpoints.RECIPE, recipes.load(folder / checkpoints.RECIPE)))
            except (ValueError, FileNotFoundError):
                continue
        return found

    def check(self, recipe: recipes.Recipe) -> None:
        """Raise RunError naming the differing keys if the run holds a recipe other than ``recipe`` (keys a
        resumed run may change excepted). Reads only; every process may call it."""
        for where, stored in self.stored_recipes():
            changed = stored.differences(recipe)
            if changed:
                raise RunError(f"{self.path} holds a different recipe ({where} differs in {', '.join(changed)}); "
                               f"resume with the same recipe or use a new --run-dir")

    def lock(self) -> None:
        """Take the run directory's exclusive lock (created with the directory) until :meth:`unlock`, or until
        this object or its process ends; RunError naming the holder's PID and host when another has it."""
        if not self.main or self._lock is not None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        f = (self.path / LOCK).open("a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            try:
                holder = json.loads(f.read() or "{}")
            except ValueError:
                holder = {}
            f.close()
            raise RunError(f"{self.path} is in use by another trainer (PID {holder.get('pid', 'unknown')} on host "
                           f"{holder.get('host', 'unknown')}, since {holder.get('since', 'unknown')}; lock file "
                           f"{self.path / LOCK}): wait for it to end or use another --run-dir") from None
        since = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        f.truncate(0)
        f.write(json.dumps({"pid": os.getpid(), "host": platform.node(), "since": since}))
        f.flush()
        self._lock = f
        _HELD.add(f)

    def unlock(self) -> None:
        if self._lock is not None:
            _HELD.discard(self._lock)
            self._lock.close()  # closing the file releases the lock
            self._lock = None

    def prepare(self, recipe: recipes.Recipe) -> None:
        """Check ``recipe`` against the run (:meth:`check`), then write it as recipe.yaml unless that file is
        the user's own (no HEADER line: left as it is; each checkpoint holds the resolved recipe anyway).
        Call it under :meth:`lock`."""
        if not self.main:
            return
        self.check(recipe)
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / "recipe.yaml"
        if target.exists() and not target.read_text(errors="replace").startswith(HEADER):
            return
        self._write_text(target, HEADER + yaml.safe_dump(recipe.to_dict(), sort_keys=False))

    def record_start(self, **facts: Any) -> None:
        """Append this start's metadata (versions, commit, the given facts) to metadata.json."""
        if not self.main:
            return
        path = self.path / "metadata.json"
        meta = json.loads(path.read_text()) if path.exists() else {"starts": []}
        meta["starts"].append({"time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                               "command": sys.argv, "host": platform.node(), "git_commit": _git_commit(),
                               "versions": _versions(), **facts})
        self._write_text(path, json.dumps(meta, indent=2) + "\n")

    def log(self, record: dict[str, Any]) -> None:
        if self.main:
            with (self.path / "log.jsonl").open("a") as f:
                f.write(json.dumps(record) + "\n")

    def save_samples(self, samples: torch.Tensor, step: int, title: str = "", real: torch.Tensor | None = None
                     ) -> Path | None:
        """Save data-space samples as ``samples/step_N.png``: a grid of images [N, C, H, W] in [-1, 1], or a
        scatter plot of 2-D points [N, 2] over ``real``. Other shapes are not pictured (returns None)."""
        if not self.main:
            return None
        path = self.path / "samples" / f"step_{step:09d}.png"
        path.parent.mkdir(exist_ok=True)
        if samples.ndim == 4 and samples.shape[1] in (1, 3):
            from torchvision.utils import save_image

            images = (samples.float() + 1) / 2
            if images.shape[-1] < 32:  # small images (8x8 digits) enlarged, pixels kept sharp
                images = images.repeat_interleave(32 // images.shape[-1], -1).repeat_interleave(
                    32 // images.shape[-2], -2)
            save_image(images, path, nrow=int(len(samples) ** 0.5 + 0.5), padding=2)
        elif samples.ndim == 2 and samples.shape[1] == 2:
            from gdiff.plots import scatter_samples

            scatter_samples(real if real is not None else samples[:0], samples, path, title=title)
        else:
            return None
        return path

    def write_metrics(self, result: dict[str, Any], name: str = "metrics.json") -> None:
        if self.main:
            self._write_text(self.path / name, json.dumps(result, indent=2) + "\n")

    @staticmethod
    def _write_text(path: Path, text: str) -> None:
        tmp = path.with_name(f".tmp-{path.name}")
        tmp.write_text(text)
        os.replace(tmp, path)
