"""The loss meter: means per part since the last read, parts that appear on some steps only (lazy R1)."""

import math

import torch

from gdiff.loss_meter import LossMeter, flat_scalars


def test_means_per_part_and_reset():
    meter = LossMeter()
    meter.add({"d/total": torch.tensor(1.0), "d/r1": torch.tensor(4.0)})
    meter.add({"d/total": torch.tensor(3.0)})
    assert meter.means() == {"d/total": 2.0, "d/r1": 4.0}
    assert meter.means() == {}
    meter.add({"g/total": torch.tensor(float("inf"))})
    assert math.isinf(meter.means()["g/total"])


def test_flat_scalars_for_trackers():
    assert flat_scalars({"train": {"betas": (0.5, 0.9), "seed": 3}, "eval": {"metrics": ["fid"]}}) == {
        "train.betas": "(0.5, 0.9)", "train.seed": 3, "eval.metrics": "['fid']"}
