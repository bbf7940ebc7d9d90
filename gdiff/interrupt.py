"""Graceful stop on SIGTERM / SIGINT: finish the step, checkpoint, exit 0 (SIGTERM) or 130 (SIGINT).

SLURM, Kubernetes and ``kill`` send SIGTERM before they kill a job; Ctrl-C sends SIGINT. While a
:class:`StopOnSignal` is active, the first of either signal only raises a flag (and Accelerate's trigger): the
training loop asks :meth:`StopOnSignal.requested` after every step, saves a checkpoint and returns. With several
processes that question is collective (``accelerator.check_trigger()``, an all-reduce of the flag and a host read),
so it is put only every ``every`` steps (the Trainer's log steps, which read the host anyway): a signal that
reaches any one rank stops every rank after the same such step. A second signal ends the process at once with
the conventional status 128 + signal number; the last committed checkpoint is untouched, since a checkpoint
becomes visible only by an atomic rename (gdiff/checkpoints.py).
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

from accelerate import Accelerator

SIGNALS = (signal.SIGTERM, signal.SIGINT)
EXIT_STATUS = {signal.SIGTERM: 0, signal.SIGINT: 130}


def exit_status(signum: int | None) -> int:
    """The process status after a graceful stop by ``signum`` (0 for SIGTERM or no signal, 130 for SIGINT)."""
    return 0 if signum is None else EXIT_STATUS[signal.Signals(signum)]


class StopOnSignal:
    """Context manager that turns SIGTERM / SIGINT into a stop request for ``accelerator``'s processes.

    ``received`` is the signal this process got (None if none, or if only another rank got one). Handlers
    are installed only in the main thread (Python delivers signals there) and restored on exit.
    """

    def __init__(self, accelerator: Accelerator, every: int = 1) -> None:
        self.accelerator, self.every = accelerator, every
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        sig = signal.Signals(signum)
        if self.received is not None:
            os.write(2, f"\n{sig.name} again: exiting now without a checkpoint (the last committed one is "
                        f"intact)\n".encode())
            os._exit(128 + signum)
        self.received = sig
        self.accelerator.set_trigger()
        os.write(2, f"\n{sig.name}: stopping after this step with a checkpoint (send it again to exit at "
                    f"once)\n".encode())

    def requested(self, step: int = 0) -> bool:
        """Whether to stop after ``step``: a local flag read with one process. With several, whether any process
        got a signal, asked collectively (one all-reduce of a scalar) at the steps that ``every`` divides, where
        every rank must call it; False at the others, with no communication."""
        if self.accelerator.num_processes == 1:
            return self.received is not None
        return step % self.every == 0 and self.accelerator.check_trigger()
