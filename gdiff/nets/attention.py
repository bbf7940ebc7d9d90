"""Multi-head self-attention over the positions of a feature map (fused SDPA kernel), as a residual block.

``x`` [B, C, H, W] -> ``h = GroupNorm(x)``; ``q, k, v = split(W_qkv h + b)`` (1x1 projections, the NIN
layers of NCSN++), each reshaped to [B, heads, H*W, C/heads];
``a = softmax(q k^T / sqrt(C/heads)) v`` computed by ``torch.nn.functional.scaled_dot_product_attention``;
``out = x + W_out a + b`` (divided by sqrt(2) when ``skip_rescale``). ``W_out`` starts near zero, so the
block starts as (a rescaled) identity. With one head this is NCSN++'s ``AttnBlockpp``; with several, ADM's.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


class SelfAttention2d(nn.Module):
    """Residual self-attention: [B, C, H, W] -> [B, C, H, W].

    Give ``num_heads`` or ``head_channels`` (channels per head), not both; default one head.
    ``num_groups`` defaults to min(C // 4, 32) GroupNorm groups. Parameters: 4 C^2 + 6 C.
    """

    def __init__(self, channels: int, num_heads: int | None = None, head_channels: int | None = None,
                 skip_rescale: bool = True, num_groups: int | None = None,
                 out_init_scale: float = 1e-10) -> None:
        super().__init__()
        if num_heads is not None and head_channels is not None:
            raise ValueError("attention: give num_heads or head_channels, not both")
        if head_channels is not None:
            if head_channels < 1 or channels % head_channels:
                raise ValueError(f"attention: head_channels={head_channels} must divide channels={channels}")
            num_heads = channels // head_channels
        num_heads = num_heads or 1
        if num_heads < 1 or channels % num_heads:
            raise ValueError(f"attention: num_heads={num_heads} must divide channels={channels}")
        self.num_heads = num_heads
        self.scale = 1 / math.sqrt(2) if skip_rescale else 1.0
        self.norm = nn.GroupNorm(num_groups or min(channels // 4, 32), channels, eps=1e-6)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        for conv, gain in ((self.qkv, 1.0), (self.out, math.sqrt(out_init_scale))):
            nn.init.xavier_uniform_(conv.weight, gain=gain)
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        height = x.shape[2]
        q, k, v = rearrange(self.qkv(self.norm(x)), "b (three n d) h w -> three b n (h w) d",
                            three=3, n=self.num_heads)
        a = F.scaled_dot_product_attention(q, k, v)
        a = rearrange(a, "b n (h w) d -> b (n d) h w", h=height)
        return (x + self.out(a)) * self.scale
