"""The orthonormal Haar transform (float64 properties) and the subband data source."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gdiff.data.source import DataSource
from gdiff.data.transformed import HaarSource, transformed
from gdiff.wavelet import haar, ihaar

shapes = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4))


def _images(shape: tuple[int, int, int, int], seed: int) -> torch.Tensor:
    b, c, h, w = shape
    return torch.randn(b, c, 2 * h, 2 * w, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@settings(max_examples=60, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_inverse_is_exact_both_ways(shape, seed):
    x = _images(shape, seed)
    y = haar(x)
    assert y.shape == (shape[0], 4 * shape[1], shape[2], shape[3])
    torch.testing.assert_close(ihaar(y), x, rtol=0, atol=1e-14)
    torch.testing.assert_close(haar(ihaar(y)), y, rtol=0, atol=1e-14)


@settings(max_examples=60, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_orthonormal_preserves_inner_products(shape, seed):
    x, u = _images(shape, seed), _images(shape, seed + 1)
    torch.testing.assert_close((haar(x) * haar(u)).sum(), (x * u).sum(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(haar(x).square().sum(), x.square().sum(), rtol=1e-12, atol=0)


def test_matrix_of_the_transform_is_orthogonal():
    """The transform of the standard basis of a 2 x 2 image is an orthonormal basis (M M^T = I)."""
    basis = torch.eye(4, dtype=torch.float64).reshape(4, 1, 2, 2)
    m = haar(basis).reshape(4, 4)
    torch.testing.assert_close(m @ m.T, torch.eye(4, dtype=torch.float64), rtol=0, atol=1e-15)


def test_subbands_of_one_block_match_the_formulas():
    a, b, c, d = 1.0, 2.0, 4.0, 8.0
    x = torch.tensor([[[[a, b], [c, d]]]], dtype=torch.float64)
    want = [(a + b + c + d) / 2, (a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2]
    torch.testing.assert_close(haar(x).flatten(), torch.tensor(want, dtype=torch.float64))


def test_layout_is_subband_major_and_lowpass_is_twice_the_block_mean():
    x = torch.randn(2, 3, 4, 6, dtype=torch.float64)
    y = haar(x)
    torch.testing.assert_close(y[:, :3], 2 * torch.nn.functional.avg_pool2d(x, 2))
    edges = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    edges[..., 1::2] = 1.0  # columns alternate 0, 1: energy only in LH (differences along the width)
    bands = haar(edges).reshape(4, -1).abs().sum(1)
    assert bands[1] > 0 and bands[2] == 0 and bands[3] == 0


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="even"):
        haar(torch.zeros(1, 1, 3, 4))
    with pytest.raises(ValueError, match="4C"):
        ihaar(torch.zeros(1, 3, 2, 2))


class _Images(DataSource):
    """Eight random 1 x 8 x 8 uint8 images."""

    in_memory, name = True, "images"

    def __init__(self, hflip: bool = False) -> None:
        self.raw = torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        self.data_shape, self.hflip = (1, 8, 8), hflip


def test_haar_source_round_trips_to_the_inner_data_space():
    inner = _Images()
    source = transformed(inner, "haar")
    assert isinstance(source, HaarSource) and source.data_shape == (4, 4, 4) and len(source) == 8
    x = source.to_model(inner.raw)
    assert x.shape == (8, 4, 4, 4) and x.abs().max() <= 1.0  # scale 1/2: every band of [-1, 1] images in [-1, 1]
    torch.testing.assert_close(source.to_data(x), inner.to_data(inner.to_model(inner.raw)), rtol=0, atol=1e-6)
    torch.testing.assert_close(transformed(inner, {"type": "haar", "scale": 1.0}).to_model(inner.raw), 2 * x)


def test_haar_source_errors_name_the_key():
    with pytest.raises(ValueError, match="data.transform"):
        transformed(_Images(), "db2")
    with pytest.raises(ValueError, match="scale"):
        transformed(_Images(), {"type": "haar", "scale": 0})
    with pytest.raises(NotImplementedError, match="hflip"):
        transformed(_Images(hflip=True), "haar")
