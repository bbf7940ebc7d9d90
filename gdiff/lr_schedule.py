"""Learning-rate decay as a pure function of the step (so that a resumed run needs no scheduler state).

    factor(step) = 1                                   for step <  start * max_steps
    linear:  (1 - u)                                   u = (step - start * max_steps) / ((1 - start) * max_steps)
    cosine:  (1 + cos(pi u)) / 2

Each network's rate is ``lr_min + (lr - lr_min) * factor``: DDGAN decays both rates to 1e-5 with a cosine
over the whole run (``lr_decay: cosine``, ``lr_min: 1e-5``).
"""

from __future__ import annotations

import math

DECAYS = ("none", "linear", "cosine")


def check(kind: str, start: float, lr_min: float = 0.0, rates: tuple[float, ...] = ()) -> None:
    """Raise a ValueError naming the recipe key if the decay settings are invalid."""
    if kind not in DECAYS:
        raise ValueError(f"optim.lr_decay must be one of {DECAYS}, got {kind!r}")
    if not 0.0 <= start < 1.0:
        raise ValueError(f"optim.decay_start must be in [0, 1), got {start}")
    if lr_min < 0 or any(lr_min > rate for rate in rates):
        raise ValueError(f"optim.lr_min must be >= 0 and at most the learning rates {rates}, got {lr_min}")


def lr_factor(step: int, max_steps: int, kind: str = "none", start: float = 0.0) -> float:
    """The factor on the base learning rate at ``step`` (0-based) of a ``max_steps`` run; the settings are
    checked once, by :func:`check` when the recipe is built, not here at every step."""
    begin = start * max_steps
    if kind == "none" or step < begin or max_steps <= 0:
        return 1.0
    u = min((step - begin) / ((1.0 - start) * max_steps), 1.0)
    return 1.0 - u if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * u))


def learning_rate(base: float, step: int, max_steps: int, kind: str = "none", start: float = 0.0,
                  lr_min: float = 0.0) -> float:
    """``lr_min + (base - lr_min) * lr_factor(...)``: the rate a network with base rate ``base`` uses."""
    return lr_min + (base - lr_min) * lr_factor(step, max_steps, kind, start)
