"""Data maps: exact inverses on their range, and configs that rebuild the same map (what exports rely on)."""

import json

import pytest
import torch

from gdiff import data
from gdiff.data import maps


def _roundtrip(m: maps.DataMap) -> maps.DataMap:
    return maps.from_config(json.loads(json.dumps(m.config())))


@pytest.mark.parametrize("section", [{"type": "mog25"}, {"type": "digits"}, {"type": "digits", "transform": "haar"},
                                     {"type": "digits", "transform": {"type": "haar", "scale": 1.0}}])
def test_a_source_map_survives_json_and_maps_identically(section):
    source = data.build(section)
    rebuilt = _roundtrip(source.data_map)
    raw = source.raw[:64]
    x = source.to_model(raw)
    assert torch.equal(rebuilt.to_model(raw), x)
    assert torch.equal(rebuilt.to_data(x), source.to_data(x))
    assert rebuilt.config() == source.data_map.config()


def test_pixel_range_maps_endpoints_exactly_and_clamps():
    m = maps.PixelRange(255)
    assert m.to_model(torch.tensor([0, 255], dtype=torch.uint8)).tolist() == [-1.0, 1.0]
    assert m.to_data(torch.tensor([-3.0, 0.5, 2.0])).tolist() == [-1.0, 0.5, 1.0]


def test_affine_inverts_in_float64():
    shift, scale = torch.tensor([1.5, -2.0]), torch.tensor([0.5, 3.0])
    m = _roundtrip(maps.Affine(shift, scale))
    raw = torch.randn(100, 2, dtype=torch.float64)
    x = m.to_model(raw)
    torch.testing.assert_close(x, ((raw - shift.double()) / scale.double()).float())
    torch.testing.assert_close(m.to_data(x).double(), raw, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("config, words", [({"type": "nope"}, "type"), ({"type": "affine", "shift": [0.0]}, "scale"),
                                           ({"type": "haar", "scale": 0.5}, "inner"),
                                           ({"type": "affine", "shift": [0.0], "scale": [-1.0]}, "scale > 0")])
def test_bad_configs_name_the_problem(config, words):
    with pytest.raises(ValueError, match=words):
        maps.from_config(config)


def test_metrics_see_the_data_space_source_through_transforms():
    from gdiff.data.transformed import untransformed

    haar = data.build({"type": "digits", "transform": "haar"})
    assert haar.data_shape == (4, 4, 4) and untransformed(haar) is haar.inner
    assert untransformed(haar).data_shape == (1, 8, 8)
    plain = data.build({"type": "mog25"})
    assert untransformed(plain) is plain
