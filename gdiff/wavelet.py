"""The orthonormal 2-D Haar transform (one level): images <-> 4 subbands at half the resolution (WaveDiff).

Each 2 x 2 block ``[[a, b], [c, d]]`` of every channel maps to

    LL = (a + b + c + d) / 2      LH = (a - b + c - d) / 2      (differences along the width)
    HL = (a + b - c - d) / 2      HH = (a - b - c + d) / 2      (along the height; diagonal)

i.e. ``subbands = M @ [a, b, c, d]`` with ``M`` the 4 x 4 Hadamard matrix / 2, which is orthonormal and
symmetric, so ``M`` is its own inverse: the transform preserves inner products and :func:`ihaar` inverts it
exactly (up to rounding). Layout: ``[B, C, H, W] <-> [B, 4C, H/2, W/2]`` with the subbands as channel groups
``[LL (C channels), LH, HL, HH]``, so ``y[:, :C]`` is the low-pass image (twice the 2 x 2 block means).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor

SUBBANDS = ("LL", "LH", "HL", "HH")


def _matrix(x: Tensor) -> Tensor:
    m = torch.tensor([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]], dtype=x.dtype,
                     device=x.device)
    return m / 2


def haar(x: Tensor) -> Tensor:
    """[B, C, H, W] (H, W even) -> [B, 4C, H/2, W/2] subbands (LL, LH, HL, HH channel groups)."""
    if x.ndim != 4 or x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f"the Haar transform needs images [B, C, H, W] with even H and W, got {tuple(x.shape)}")
    blocks = rearrange(x, "b c (h p) (w q) -> b (p q) c h w", p=2, q=2)  # [a, b, c, d] of each 2 x 2 block
    return rearrange(torch.einsum("sk,bkchw->bschw", _matrix(x), blocks), "b s c h w -> b (s c) h w")


def ihaar(y: Tensor) -> Tensor:
    """[B, 4C, H, W] subbands -> [B, C, 2H, 2W] images; the exact inverse of :func:`haar`."""
    if y.ndim != 4 or y.shape[1] % 4:
        raise ValueError(f"the inverse Haar transform needs [B, 4C, H, W] subbands, got {tuple(y.shape)}")
    subbands = rearrange(y, "b (s c) h w -> b s c h w", s=4)
    blocks = torch.einsum("ks,bschw->bkchw", _matrix(y), subbands)  # M^T = M
    return rearrange(blocks, "b (p q) c h w -> b c (h p) (w q)", p=2, q=2)
