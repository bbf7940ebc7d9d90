"""The reference sampler's forward process as a gdiff diffusion section.

The DDGAN code (and WaveDiff's copy) builds its grid ``tau_i = eps + (1 - eps) i / T`` (eps = 1e-3) and the vp
signal ``abar(tau) = exp(-d tau^2 / 2 - b tau)`` (d = beta_max - beta_min, b = beta_min), but its posterior
coefficients come from ``cumprod(1 - beta_i)`` over steps 1..T, i.e. from ``abar(tau_i) / abar(tau_0)``: the chain
treats the first grid time as the clean level (alpha_bar 1, no noise there). With ``u = (tau - eps) / (1 - eps)``:

    log abar(tau) - log abar(eps) = -d' u^2 / 2 - b' u,   d' = d (1 - eps)^2,   b' = (1 - eps) (b + d eps),

gdiff's vp schedule with ``beta_min = b'``, ``beta_max = b' + d'`` and ``eps = 0`` (grid u_i = i / T), so the
converted generator's chain equals the reference chain (times, posterior coefficients, and the last step's
deterministic mean) with no special code. Only the vp schedule is converted; the published checkpoints use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gdiff.processes.scalar import VP_EPS

REFERENCE_EPS = 1e-3  # eps_small of the reference's get_time_schedule / get_sigma_schedule


def reference_diffusion(section: Mapping[str, Any]) -> dict[str, Any]:
    """gdiff's ``diffusion`` section reproducing the reference chain of the recipe's ``diffusion`` section.

    The recipe section must be DDGAN's vp schedule as gdiff writes it (``schedule: vp``, ``num_steps``,
    ``beta_min``, ``beta_max``, ``eps`` 1e-3 or absent); anything else is a ValueError naming the key.
    """
    if section.get("schedule") != "vp":
        raise ValueError(f"diffusion.schedule: the reference checkpoints use the vp schedule (the DDGAN code's "
                         f"default, no --use_geometric); got {section.get('schedule')!r}")
    unknown = sorted(set(section) - {"schedule", "num_steps", "beta_min", "beta_max", "eps", "time_sampling"})
    if unknown:
        raise ValueError(f"diffusion: keys {unknown} have no counterpart in the reference chain")
    eps = float(section.get("eps", VP_EPS))
    if eps != REFERENCE_EPS:
        raise ValueError(f"diffusion.eps: the reference grid starts at {REFERENCE_EPS}, got {eps}")
    steps = section.get("num_steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"diffusion.num_steps must be an integer >= 1 (the checkpoint's --num_timesteps), "
                         f"got {steps!r}")
    b, top = float(section.get("beta_min", 0.1)), float(section.get("beta_max", 20.0))
    d = top - b
    b_new = (1 - eps) * (b + d * eps)
    out = {"schedule": "vp", "num_steps": steps, "beta_min": b_new, "beta_max": b_new + d * (1 - eps) ** 2,
           "eps": 0.0}
    if "time_sampling" in section:
        out["time_sampling"] = section["time_sampling"]
    return out
