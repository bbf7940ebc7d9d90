"""The run directory's chores: the resolved recipe, per-start metadata, the log, sample pictures, metrics.

    RUN/recipe.yaml             the resolved recipe; a resumed run must match it
    RUN/metadata.json           {"starts": [...]}: one entry per start or resume (versions, git commit,
                                world size, device, precision, command line, start time)
    RUN/log.jsonl               one JSON record per log step (means of the loss parts since the last one)
    RUN/samples/step_*.png      grids of EMA samples from fixed noise (scatter plots for 2-D data)
    RUN/metrics.json            the final evaluation

Only the main process writes; every method is a no-op elsewhere.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from gdiff import recipes


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
    """The run directory at ``path``; ``main`` says whether this process writes."""

    def __init__(self, path: str | Path, main: bool = True) -> None:
        self.path, self.main = Path(path), main

    def prepare(self, recipe: recipes.Recipe) -> None:
        """Create the directory and write recipe.yaml, refusing a different recipe than the one it holds."""
        if not self.main:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / "recipe.yaml"
        if target.exists():
            changed = recipes.load(target).differences(recipe)
            if changed:
                raise ValueError(f"{target} holds a different recipe (differs in {', '.join(changed)}); resume "
                                 f"with the same recipe or use a new --run-dir")
        self._write_text(target, yaml.safe_dump(recipe.to_dict(), sort_keys=False))

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
