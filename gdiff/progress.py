"""What a run reports as it goes: the progress bar, log.jsonl and the trackers, images/s, and the stop on a
non-finite loss.

Loss parts stay on the device in a :class:`gdiff.loss_meter.LossMeter`; :meth:`Progress.step` reads them (one
host synchronisation) only at log steps.
"""

from __future__ import annotations

import math
import time
from typing import Any

from accelerate import Accelerator
from tqdm.auto import tqdm

from gdiff.loss_meter import LossMeter
from gdiff.rundir import RunDir


class Progress:
    """Progress of a run from ``step`` to ``max_steps`` with ``batch_size`` examples per step (all processes)."""

    def __init__(self, accelerator: Accelerator, run_dir: RunDir, step: int, max_steps: int, batch_size: int,
                 log_every: int, desc: str) -> None:
        self.accelerator, self.run_dir = accelerator, run_dir
        self.batch_size, self.log_every = batch_size, log_every
        self.meter = LossMeter()
        self.bar = tqdm(total=max_steps, initial=step, disable=not accelerator.is_main_process, dynamic_ncols=True,
                        desc=desc)
        self.start = time.perf_counter()
        self.window = (self.start, step)  # (time, step) of the last log record

    def step(self, step: int, force: bool = False) -> None:
        """Count one finished ``step``; every ``log_every`` steps (or when ``force``d) log the means of the loss
        parts, the time and images/s. FloatingPointError if a mean is not finite."""
        self.bar.update(1)
        if step % self.log_every and not force:
            return
        parts = self.meter.means()
        bad = {k: v for k, v in parts.items() if not math.isfinite(v)}
        if bad:
            raise FloatingPointError(f"non-finite loss before step {step} ({bad}); stopped without saving: the last "
                                     f"good checkpoint in {self.run_dir.path / 'checkpoints'} is intact (lower the "
                                     f"learning rates or use train.mixed_precision=no)")
        now = time.perf_counter()
        images_per_s = (step - self.window[1]) * self.batch_size / max(now - self.window[0], 1e-9)
        self.window = (now, step)
        self.bar.set_postfix({"img/s": f"{images_per_s:.0f}",
                              **{k: f"{v:.3f}" for k, v in parts.items() if k.endswith("total")}})
        self.log({"step": step, "time": now - self.start, "images_per_s": images_per_s, **parts})

    def log(self, record: dict[str, Any]) -> None:
        """One record (with its ``step``) into log.jsonl and the trackers."""
        self.run_dir.log(record)
        self.accelerator.log({k: v for k, v in record.items() if k != "step"}, step=record["step"])

    def close(self) -> None:
        self.bar.close()
