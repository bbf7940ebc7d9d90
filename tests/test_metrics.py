"""2-D metrics against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from gdiff.metrics.mixture import frechet_distance, mode_statistics


def test_frechet_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(500, 3)) @ rng.normal(size=(3, 3))
    fake = rng.normal(size=(400, 3)) @ rng.normal(size=(3, 3)) + 0.7
    mu_r, mu_f = real.mean(0), fake.mean(0)
    c_r, c_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    expected = ((mu_r - mu_f) ** 2).sum() + np.trace(c_r + c_f - 2 * scipy.linalg.sqrtm(c_r @ c_f).real)
    assert frechet_distance(real, fake) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-8)


def test_frechet_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="frechet_distance"):
        frechet_distance(np.zeros((5, 2)), np.zeros((5, 3)))


def test_mode_statistics_by_hand():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    samples = torch.cat([torch.zeros(10, 2) + 0.1, torch.full((5, 2), 50.0)])  # all good ones at mode 0
    stats = mode_statistics(samples, centres, std=1.0)
    assert stats["modes_covered"] == 1 and stats["num_modes"] == 2
    assert stats["high_quality"] == pytest.approx(10 / 15)
    assert stats["kl_modes_uniform"] == pytest.approx(math.log(2))
    balanced = mode_statistics(torch.cat([torch.zeros(5, 2), torch.tensor([[10.0, 2.9]] * 5)]), centres, 1.0)
    assert balanced["modes_covered"] == 2 and balanced["kl_modes_uniform"] == pytest.approx(0.0)
    assert mode_statistics(torch.tensor([[10.0, 3.1]]), centres, 1.0)["high_quality"] == 0.0
