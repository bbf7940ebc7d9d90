"""FIR resampling by a factor of 2 (the ``upfirdn2d`` of StyleGAN2 / NCSN++), each as ONE depthwise conv.

The 1-D taps ``k`` (default [1, 3, 3, 1], symmetric, even length L) give the 2-D kernel
``K = outer(k, k) / sum(k)^2`` (sums to 1). With ``p = L - 2``:

* downsample: ``upfirdn2d(x, K, down=2, pad=(p/2, p/2))``
  == ``conv2d(x, K, stride=2, padding=p/2, groups=C)``;  [B, C, H, W] -> [B, C, H/2, W/2]
* upsample: ``upfirdn2d(x, 4 K, up=2, pad=(p/2 + 1, p/2))``
  == ``conv_transpose2d(x, 4 K, stride=2, padding=p/2, groups=C)``;  -> [B, C, 2H, 2W]
* conv-downsample (NCSN++'s fused "Conv2d(down=True)" of the input pyramid): blur
  ``upfirdn2d(x, K, pad=(L/2, L/2))`` == ``conv2d(x, K, padding=L/2, groups=C)`` -> [B, C, H+1, W+1],
  then a learned 3x3 convolution with stride 2 and no padding -> [B, C_out, H/2, W/2].

The kernel is a non-persistent buffer (moves with ``.to()``, not stored in checkpoints); autocast casts it
like any convolution weight.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DEFAULT_TAPS = (1, 3, 3, 1)


def fir_kernel(taps: Sequence[float] = DEFAULT_TAPS) -> Tensor:
    """Separable 2-D kernel [L, L] = outer(taps, taps) / sum(taps)^2; taps must be symmetric, L even."""
    k = torch.as_tensor(taps, dtype=torch.float32, device="cpu")  # also under a meta-device context
    if k.ndim != 1 or len(k) < 2 or len(k) % 2 or not torch.equal(k, k.flip(0)) or k.sum() <= 0:
        raise ValueError(f"fir_kernel: taps must be a symmetric 1-D list of even length >= 2 with a positive "
                         f"sum, got {list(taps)}")
    k = torch.outer(k, k)
    return k / k.sum()


class _FIR(nn.Module):
    """Holds the [1, 1, L, L] kernel buffer; ``weight(x)`` expands it to the depthwise weight [C, 1, L, L]."""

    def __init__(self, taps: Sequence[float], gain: float) -> None:
        super().__init__()
        self.register_buffer("kernel", (fir_kernel(taps) * gain)[None, None], persistent=False)
        self.pad = (self.kernel.shape[-1] - 2) // 2

    def weight(self, x: Tensor) -> Tensor:
        return self.kernel.to(x.dtype).expand(x.shape[1], 1, -1, -1)


class FIRDownsample(_FIR):
    """[B, C, H, W] -> [B, C, H/2, W/2]: FIR low-pass then keep every second sample."""

    def __init__(self, taps: Sequence[float] = DEFAULT_TAPS) -> None:
        super().__init__(taps, gain=1.0)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight(x), stride=2, padding=self.pad, groups=x.shape[1])


class FIRUpsample(_FIR):
    """[B, C, H, W] -> [B, C, 2H, 2W]: zero insertion then FIR interpolation (gain 4 keeps the mean)."""

    def __init__(self, taps: Sequence[float] = DEFAULT_TAPS) -> None:
        super().__init__(taps, gain=4.0)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv_transpose2d(x, self.weight(x), stride=2, padding=self.pad, groups=x.shape[1])


class FIRConvDownsample(_FIR):
    """[B, C_in, H, W] -> [B, C_out, H/2, W/2]: FIR blur (padding L/2) then a learned 3x3 conv, stride 2.

    ``self.conv`` is a plain ``nn.Conv2d`` (bias included) so callers can initialise it as they wish.
    """

    def __init__(self, in_ch: int, out_ch: int, taps: Sequence[float] = DEFAULT_TAPS) -> None:
        super().__init__(taps, gain=1.0)
        self.conv = nn.Conv2d(in_ch, out_ch, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        x = F.conv2d(x, self.weight(x), padding=self.pad + 1, groups=x.shape[1])
        return self.conv(x)
