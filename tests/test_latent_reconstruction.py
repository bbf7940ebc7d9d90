"""LDDGAN's decaying latent L1 against an independent float64 computation of their schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gdiff import objectives
from gdiff.objectives import LatentReconstruction, Pair, StepData
from gdiff.objectives.latent_reconstruction import decay_weight
from gdiff.processes import Schedule


@pytest.mark.parametrize("n", [1, 7, 1000])
def test_weight_is_lddgans_sigmoid_schedule(n):
    expected = 1 - 1 / (1 + np.exp(-np.linspace(-6, 6, n + 1)))  # their alpha[epoch], float64
    got = [decay_weight(k, n) for k in range(n + 1)]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert decay_weight(n + 50, n) == pytest.approx(expected[-1])  # held after the schedule ends
    assert decay_weight(12345, None) == 1.0


def test_generator_loss_is_weighted_mean_absolute_error():
    schedule = Schedule.from_config({"schedule": "cosine", "num_steps": 2})
    x0 = torch.randn(4, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    fake = torch.randn(4, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    pair = Pair.draw(schedule, x0)
    data = StepData(schedule, pair, fake, fake, step=3)
    loss = LatentReconstruction(decay_steps=10).generator_loss(data)["latent_rec"]
    expected = (1 - 1 / (1 + np.exp(-(-6 + 12 * 3 / 10)))) * (fake.double() - x0.double()).abs().mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    data.fake_x0 = None
    with pytest.raises(ValueError, match="x_prev"):
        LatentReconstruction().generator_loss(data)


def test_lddgan_preset_and_term_build_from_a_recipe_section():
    preset = objectives.from_config({"type": "lddgan", "decay_steps": 100})
    assert [type(t).__name__ for t in preset.terms] == ["NonSaturatingGAN", "R1Penalty", "LatentReconstruction"]
    assert preset.pairwise
    terms = objectives.from_config({"type": "terms", "terms": [{"term": "adversarial", "pairwise": True},
                                                               {"term": "latent_reconstruction", "decay_steps": 5}]})
    assert terms.terms[-1].decay_steps == 5
    with pytest.raises(ValueError, match="decay_steps"):
        objectives.from_config({"type": "lddgan", "decay_steps": 0})
