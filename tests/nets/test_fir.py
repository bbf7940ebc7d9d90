"""FIR resampling against an explicit float64 numpy ``upfirdn2d`` (zero insertion, padding, convolution,
decimation written out as loops)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gdiff.nets.fir import FIRConvDownsample, FIRDownsample, FIRUpsample, fir_kernel


def upfirdn2d_numpy(x: np.ndarray, k: np.ndarray, up: int, down: int, pad: tuple[int, int]) -> np.ndarray:
    """x [B, C, H, W], k [L, L]: zero insertion, pad (before, after), convolve (flipped k), decimate."""
    b, c, h, w = x.shape
    u = np.zeros((b, c, h * up, w * up))
    u[:, :, ::up, ::up] = x
    u = np.pad(u, ((0, 0), (0, 0), pad, pad))
    kf = k[::-1, ::-1]
    n = k.shape[0]
    out_h, out_w = u.shape[2] - n + 1, u.shape[3] - n + 1
    out = np.zeros((b, c, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            out[:, :, i, j] = (u[:, :, i:i + n, j:j + n] * kf).sum(axis=(2, 3))
    return out[:, :, ::down, ::down]


def conv2d_numpy(x: np.ndarray, w: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """Valid cross-correlation: x [B, Ci, H, W], w [Co, Ci, k, k] -> [B, Co, H', W']."""
    k = w.shape[-1]
    out_h, out_w = (x.shape[2] - k) // stride + 1, (x.shape[3] - k) // stride + 1
    out = np.zeros((x.shape[0], w.shape[0], out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            patch = x[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            out[:, :, i, j] = np.einsum("bcyx,ocyx->bo", patch, w)
    return out + bias[None, :, None, None]


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(2, 3, 8, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_kernel_is_normalised_separable_product():
    k = fir_kernel((1, 3, 3, 1)).double().numpy()
    assert np.allclose(k, np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0)
    with pytest.raises(ValueError, match="symmetric"):
        fir_kernel((1, 2, 3, 4))
    with pytest.raises(ValueError, match="even length"):
        fir_kernel((1, 2, 1))


@pytest.mark.parametrize("taps", [(1, 3, 3, 1), (1, 1), (1, 5, 10, 10, 5, 1)])
def test_downsample_matches_upfirdn(x, taps):
    k = fir_kernel(taps).double().numpy()
    p = len(taps) - 2
    expected = upfirdn2d_numpy(x.numpy(), k, up=1, down=2, pad=((p + 1) // 2, p // 2))
    got = FIRDownsample(taps).double()(x)
    assert got.shape == (2, 3, 4, 3)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("taps", [(1, 3, 3, 1), (1, 1), (1, 5, 10, 10, 5, 1)])
def test_upsample_matches_upfirdn(x, taps):
    k = fir_kernel(taps).double().numpy() * 4
    p = len(taps) - 2
    expected = upfirdn2d_numpy(x.numpy(), k, up=2, down=1, pad=((p + 1) // 2 + 1, p // 2))
    got = FIRUpsample(taps).double()(x)
    assert got.shape == (2, 3, 16, 12)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)


def test_upsample_keeps_constants_and_down_averages():
    ones = torch.ones(1, 1, 6, 6, dtype=torch.float64)
    up = FIRUpsample().double()(ones)
    assert torch.allclose(up[..., 2:-2, 2:-2], torch.ones_like(up[..., 2:-2, 2:-2]))
    down = FIRDownsample().double()(ones)
    assert torch.allclose(down[..., 1:-1, 1:-1], torch.ones_like(down[..., 1:-1, 1:-1]))


def test_conv_downsample_matches_blur_then_strided_conv(x):
    layer = FIRConvDownsample(3, 5).double()
    k = fir_kernel().double().numpy()
    blurred = upfirdn2d_numpy(x.numpy(), k, up=1, down=1, pad=(2, 2))
    expected = conv2d_numpy(blurred, layer.conv.weight.detach().numpy(), layer.conv.bias.detach().numpy(), 2)
    got = layer(x)
    assert got.shape == (2, 5, 4, 3)
    np.testing.assert_allclose(got.detach().numpy(), expected, atol=1e-12)


def test_kernel_buffer_is_not_in_state_dict():
    assert "kernel" not in FIRDownsample().state_dict()
    assert list(FIRConvDownsample(2, 4).state_dict()) == ["conv.weight", "conv.bias"]
