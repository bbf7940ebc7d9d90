"""Mode coverage of digit data (DDGAN's StackedMNIST measure): modes covered and KL(histogram || uniform).

Each channel of a generated image is read by gdiff's digit classifier (:mod:`gdiff.eval.digit_classifier`),
so a stacked sample (a, b, c) falls in mode ``100 a + 10 b + c`` of 1000 (a one-channel digit: mode a of 10).
With ``n_m`` samples in mode m of M and p_m = n_m / N:

    modes covered = #{m : n_m >= 1},    KL(p || uniform) = sum_m p_m log(M p_m)   (nats; 0 log 0 = 0).

The classifier's accuracy on held-out real digits comes with the result: a classifier error rate e moves a
stacked digit to another mode with probability about 1 - (1 - e)^3.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from gdiff.eval.digit_classifier import classify_digits, digit_classifier


def mode_histogram(modes: Tensor, num_modes: int) -> dict[str, float]:
    """Covered modes and KL(histogram || uniform) of mode indices [N] in [0, num_modes)."""
    if modes.ndim != 1 or len(modes) == 0:
        raise ValueError(f"modes must be a non-empty 1-D tensor, got shape {tuple(modes.shape)}")
    counts = torch.bincount(modes, minlength=num_modes).double()
    p = counts / counts.sum()
    nonzero = p > 0
    kl = float((p[nonzero] * torch.log(p[nonzero] * num_modes)).sum())
    return {"modes_covered": int(nonzero.sum()), "num_modes": num_modes, "kl_modes_uniform": kl}


def digit_modes(digits: Tensor) -> Tensor:
    """Digits per channel [N, C] -> mode index [N]: sum_c digit_c 10^(C - 1 - c) (100 a + 10 b + c for C = 3)."""
    weights = torch.tensor([10 ** (digits.shape[1] - 1 - c) for c in range(digits.shape[1])])
    return (digits * weights).sum(1)


def mode_metrics(samples: Tensor, source: object, cache_dir: str | Path | None = None) -> dict[str, float]:
    """Modes covered, their KL to uniform and the classifier's test accuracy, for data-space images
    [N, C, R, R] in [-1, 1] of a digit data source (digits, stacked_digits, stacked_mnist)."""
    _, net, test_accuracy = digit_classifier(source, cache_dir)
    digits = classify_digits(net, samples)
    return {**mode_histogram(digit_modes(digits), int(math.pow(10, digits.shape[1]))),
            "classifier_test_accuracy": test_accuracy}
