"""Mode coverage of digit data: the histogram metric against float64 numpy, the digit classifier gdiff trains,
and both read on real stacked digits (all modes) and on a collapsed generator (one mode)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gdiff import data
from gdiff.eval import image_metrics
from gdiff.eval.digit_classifier import classify_digits, digit_classifier, real_digits
from gdiff.eval.fidelity import FidelityOptions
from gdiff.eval.modes import digit_modes, mode_histogram, mode_metrics


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("digit_cache")


@pytest.fixture(scope="module")
def stacked():
    return data.build({"type": "stacked_digits", "size": 20_000})


def test_mode_histogram_matches_numpy():
    modes = torch.randint(0, 37, (5000,), generator=torch.Generator().manual_seed(0)) % 30  # uneven, 30 of 50
    counts = np.bincount(modes.numpy(), minlength=50).astype(np.float64)
    p = counts / counts.sum()
    expected = sum(pi * math.log(pi * 50) for pi in p if pi > 0)
    out = mode_histogram(modes, 50)
    assert out["modes_covered"] == 30 and out["num_modes"] == 50
    assert out["kl_modes_uniform"] == pytest.approx(expected, rel=1e-12)
    assert mode_histogram(torch.arange(1000), 1000)["kl_modes_uniform"] == pytest.approx(0.0, abs=1e-12)
    assert mode_histogram(torch.full((10,), 7), 1000)["kl_modes_uniform"] == pytest.approx(math.log(1000))


def test_digit_modes_read_channels_as_decimal_digits():
    assert digit_modes(torch.tensor([[1, 2, 3], [0, 0, 9], [9, 9, 9]])).tolist() == [123, 9, 999]
    assert digit_modes(torch.tensor([[4], [7]])).tolist() == [4, 7]


def test_classifier_is_accurate_on_held_out_digits_and_cached(stacked, cache):
    path, net, accuracy = digit_classifier(stacked, cache)
    assert accuracy > 0.95 and path.is_file()
    _, _, test_x, test_y = real_digits(stacked)
    assert (classify_digits(net, test_x)[:, 0] == test_y).double().mean() == pytest.approx(accuracy)
    mtime = path.stat().st_mtime_ns
    assert digit_classifier(stacked, cache)[2] == accuracy and path.stat().st_mtime_ns == mtime


def test_real_stacked_digits_cover_every_mode_and_a_collapsed_generator_one(stacked, cache):
    real = stacked.to_model(stacked.raw)
    out = mode_metrics(real, stacked, cache)
    truth = mode_histogram(stacked.labels, 1000)
    assert truth["modes_covered"] == 1000
    assert out["modes_covered"] >= 995 and out["kl_modes_uniform"] < truth["kl_modes_uniform"] + 0.05
    assert out["classifier_test_accuracy"] > 0.95
    collapsed = mode_metrics(real[:1].expand(500, -1, -1, -1), stacked, cache)
    assert collapsed["modes_covered"] == 1
    assert collapsed["kl_modes_uniform"] == pytest.approx(math.log(1000))


def test_fid_in_the_digit_classifier_feature_space(stacked, cache):
    options = FidelityOptions(feature_extractor="digits", cache_dir=str(cache))
    real = stacked.to_model(stacked.raw)
    same = image_metrics(real[-2000:], stacked, ["fid", "isc"], options, reference_count=2000)
    noise = torch.rand(2000, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    bad = image_metrics(noise, stacked, ["fid"], options, reference_count=2000)
    assert same["classifier_test_accuracy"] > 0.95
    assert 0 <= same["fid"] < bad["fid"] / 20, (same, bad)
    assert same["isc_mean"] > 100  # 1000 modes, near-uniform and confidently read


def test_evaluate_draws_once_and_applies_the_recipe_metrics(cache):
    from gdiff.eval import evaluate
    from gdiff.recipes import EvalConfig

    stacked = data.build({"type": "stacked_digits", "size": 1000})  # the reference: all 1000
    calls = []

    def sample_fn(num):
        calls.append(num)
        return stacked.to_model(stacked.raw[:num])

    options = FidelityOptions(feature_extractor="digits", cache_dir=str(cache))
    out = evaluate(sample_fn, stacked, EvalConfig(num_samples=300, metrics=["modes", "kid"]), options)
    assert calls == [300] and {"modes_covered", "kl_modes_uniform", "kid_mean", "classifier_test_accuracy"} <= set(out)
    assert evaluate(sample_fn, stacked, EvalConfig(num_samples=10)) == {} and calls == [300]
    with pytest.raises(ValueError, match="eval.metrics: unknown metric"):  # (the recipe refuses it first)
        evaluate(sample_fn, stacked, SimpleNamespace(num_samples=10, metrics=["fud"]))
    mog = data.build({"type": "mog25", "per_mode": 100})
    with pytest.raises(ValueError, match="image metrics"):
        evaluate(lambda n: torch.zeros(n, 2), mog, EvalConfig(metrics=["fid"]))
    assert evaluate(lambda n: mog.points[:n], mog, EvalConfig(num_samples=500))["num_modes"] == 25
