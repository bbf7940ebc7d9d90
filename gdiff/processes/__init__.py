"""Forward processes: the interface (:class:`ForwardProcess`), the scalar schedules and CLD.

A recipe's ``diffusion`` section picks one:

    diffusion: {schedule: cosine, num_steps: 2}                          # a scalar schedule (vp, geometric, cosine)
    diffusion: {process: cld, num_steps: 2, mass: 0.25, gamma: 0.04, beta: 4.0}   # critically-damped Langevin

``process`` defaults to ``scalar``. The objectives and the samplers only call the interface, so every process
plugs into every objective that can work with it; the rest refuse at build time (docs/diffusion.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gdiff.processes.base import ForwardProcess
from gdiff.processes.cld import CLD
from gdiff.processes.scalar import Schedule

PROCESSES = ("scalar", "cld")

__all__ = ["CLD", "PROCESSES", "ForwardProcess", "Schedule", "from_config", "generator_section"]


def from_config(config: Mapping[str, Any]) -> ForwardProcess:
    """Build from a recipe's ``diffusion`` section (see the module docstring); errors name the key."""
    if not isinstance(config, Mapping):
        raise ValueError(f"the diffusion section must be a mapping, got {config!r}")
    config = dict(config)
    kind = config.pop("process", "scalar")
    if kind not in PROCESSES:
        raise ValueError(f"diffusion.process must be one of {PROCESSES}, got {kind!r}")
    if kind == "cld":
        if "schedule" in config:
            raise ValueError("diffusion.schedule picks a scalar schedule; diffusion.process cld has none: drop it")
        return CLD.from_config(config)
    return Schedule.from_config(config)


def generator_section(section: Mapping[str, Any], process: ForwardProcess,
                      data_shape: tuple[int, ...]) -> dict[str, Any]:
    """The recipe's generator section, with ``input_shape`` set when the process's state is wider than the data
    (CLD: G reads u_t = (x_t, v_t) and predicts x0); unchanged for the scalar schedules."""
    state = process.state_shape(tuple(data_shape))
    return dict(section) if state == tuple(data_shape) else {**section, "input_shape": list(state)}
