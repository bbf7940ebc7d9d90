"""Learning-rate decay: the factor's shape, its errors, and the Trainer applying it at every step."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gdiff.lr_schedule import check, learning_rate, lr_factor


def test_reference_values():
    assert lr_factor(0, 100, "none") == 1.0 and lr_factor(99, 100, "none") == 1.0
    assert lr_factor(49, 100, "linear", 0.5) == 1.0
    assert lr_factor(50, 100, "linear", 0.5) == 1.0
    assert lr_factor(75, 100, "linear", 0.5) == pytest.approx(0.5)
    assert lr_factor(100, 100, "linear", 0.5) == 0.0
    assert lr_factor(25, 100, "cosine") == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    assert lr_factor(50, 100, "cosine") == pytest.approx(0.5)


@given(st.integers(1, 10_000), st.sampled_from(["linear", "cosine"]), st.floats(0.0, 0.99))
def test_decays_monotonically_from_one_to_zero(max_steps, kind, start):
    factors = [lr_factor(s, max_steps, kind, start) for s in range(0, max_steps + 1, max(1, max_steps // 50))]
    assert factors[0] == 1.0 and lr_factor(max_steps, max_steps, kind, start) == pytest.approx(0.0, abs=1e-12)
    assert all(0.0 <= b <= a <= 1.0 for a, b in itertools.pairwise(factors))


@pytest.mark.parametrize(("kind", "start", "match"), [("step", 0.0, "optim.lr_decay"),
                                                       ("linear", 1.0, "optim.decay_start"),
                                                       ("linear", -0.1, "optim.decay_start")])
def test_bad_settings_name_the_key(kind, start, match):
    with pytest.raises(ValueError, match=match):
        check(kind, start)


def test_decays_to_lr_min():
    assert learning_rate(1e-4, 0, 100, "cosine", lr_min=1e-5) == pytest.approx(1e-4)
    assert learning_rate(1e-4, 50, 100, "cosine", lr_min=1e-5) == pytest.approx(5.5e-5)
    assert learning_rate(1e-4, 100, 100, "cosine", lr_min=1e-5) == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="optim.lr_min"):
        check("cosine", 0.0, 2e-4, (1e-4, 3e-4))
