"""Building blocks of SIDDM's ADM-style U-Nets, shared by the generator and the U-Net discriminator.

Layout (``UNetLayout``): level ``i`` works at ``resolution / 2**i`` pixels with ``channels * channel_mult[i]``
feature maps. As in Imagen's efficient U-Net, the encoder downsamples at the START of the first residual
block of every level after the first (the convolutions then run at the lower resolution) and the decoder
upsamples after the last block of a level, so no separate resampling blocks are needed.

* ``UNetEncoder``: stem conv, ``num_res_blocks`` blocks per level (attention after a block whose level is
  in ``attention_resolutions``), middle ResBlock-attention-ResBlock. Returns the bottleneck and the skips.
* ``UNetDecoder``: the mirror; every block concatenates one skip on channels. Returns full-resolution
  features with ``channels * channel_mult[0]`` maps.

Blocks receive ``emb`` [B, emb_dim] (time, plus class) as a scale-shift of their second GroupNorm and,
in the generator, ``w`` [B, w_dim] (mapped latent z) through adaptive GroupNorm in both norms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gdiff.nets.attention import SelfAttention2d
from gdiff.nets.conditioning import AdaptiveGroupNorm


def _group_norm(num_groups: int, channels: int, w_dim: int) -> nn.Module:
    return AdaptiveGroupNorm(num_groups, channels, w_dim) if w_dim else nn.GroupNorm(num_groups, channels, eps=1e-6)


class ResBlock(nn.Module):
    """[B, C_in, H, W] -> [B, C_out, H', W'] with H' = H / 2 when ``down`` else H.

    ``x = avgpool2x2(x)`` if down;  ``h = conv1(SiLU(N1(x)))``;
    ``h = N2(h) * (1 + scale) + shift`` with ``[scale, shift] = Linear(SiLU(emb))``;
    ``out = skip(x) + conv2(dropout(SiLU(h)))``. ``N1``, ``N2`` are GroupNorms, adaptive to ``w`` when
    ``w_dim > 0``; ``skip`` is identity or a 1x1 conv. ``conv2`` is zero-initialised, so a new block is
    its skip path.
    """

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, *, w_dim: int = 0,
                 dropout: float = 0.0, down: bool = False, num_groups: int = 32) -> None:
        super().__init__()
        self.down = down
        self.w_dim = w_dim
        self.norm1 = _group_norm(num_groups, in_channels, w_dim)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_channels)
        self.norm2 = _group_norm(num_groups, out_channels, w_dim)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def _norm(self, norm: nn.Module, h: Tensor, w: Tensor | None) -> Tensor:
        return norm(h, w) if self.w_dim else norm(h)

    def forward(self, x: Tensor, emb: Tensor, w: Tensor | None = None) -> Tensor:
        if self.down:
            x = F.avg_pool2d(x, 2)
        h = self.conv1(F.silu(self._norm(self.norm1, x, w)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self._norm(self.norm2, h, w) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


@dataclass(frozen=True)
class UNetLayout:
    """Validated U-Net hyper-parameters; errors name the recipe key. Level ``i`` has
    ``level_channels[i]`` maps at ``level_resolutions[i]`` pixels; ``emb_dim = 4 * channels``."""

    resolution: int
    channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: int
    attention_resolutions: tuple[int, ...]
    num_head_channels: int | None
    num_heads: int
    num_groups: int
    dropout: float

    def __post_init__(self) -> None:
        if self.channels < 1:
            raise ValueError(f"channels must be >= 1, got {self.channels}")
        if not self.channel_mult or any(m < 1 for m in self.channel_mult):
            raise ValueError(f"channel_mult must be a non-empty list of integers >= 1, got {self.channel_mult}")
        if self.num_res_blocks < 1:
            raise ValueError(f"num_res_blocks must be >= 1, got {self.num_res_blocks}")
        if self.resolution % 2 ** (len(self.channel_mult) - 1):
            raise ValueError(f"channel_mult: {len(self.channel_mult)} levels need a resolution divisible by "
                             f"{2 ** (len(self.channel_mult) - 1)}; the data is {self.resolution} px")
        missing = sorted(set(self.attention_resolutions) - set(self.level_resolutions))
        if missing:
            raise ValueError(f"attention_resolutions: {missing} px is not a level of this U-Net; its levels "
                             f"are {list(self.level_resolutions)} px")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for ch in self.level_channels:
            if ch % self.num_groups:
                raise ValueError(f"num_groups: {self.num_groups} does not divide {ch} channels")
        for ch in self.attention_channels:
            if self.num_head_channels is not None and (self.num_head_channels < 1 or ch % self.num_head_channels):
                raise ValueError(f"num_head_channels: {self.num_head_channels} does not divide the {ch} "
                                 f"channels of an attention layer")
            if self.num_head_channels is None and (self.num_heads < 1 or ch % self.num_heads):
                raise ValueError(f"num_heads: {self.num_heads} does not divide the {ch} channels of an "
                                 f"attention layer")

    @property
    def level_channels(self) -> tuple[int, ...]:
        return tuple(self.channels * m for m in self.channel_mult)

    @property
    def level_resolutions(self) -> tuple[int, ...]:
        return tuple(self.resolution // 2**i for i in range(len(self.channel_mult)))

    @property
    def emb_dim(self) -> int:
        return 4 * self.channels

    @property
    def attention_channels(self) -> tuple[int, ...]:
        """Channel counts of every attention layer (attended levels and the middle)."""
        levels = zip(self.level_channels, self.level_resolutions, strict=True)
        att = [c for c, r in levels if r in self.attention_resolutions]
        return (*att, self.level_channels[-1])

    def attends(self, level: int) -> bool:
        return self.level_resolutions[level] in self.attention_resolutions

    def heads_for(self, channels: int) -> int:
        """Head count: ``channels / num_head_channels``, or ``num_heads`` when num_head_channels is None."""
        return channels // self.num_head_channels if self.num_head_channels is not None else self.num_heads


def make_layout(data_shape: Sequence[int], channels: int, channel_mult: Sequence[int], num_res_blocks: int,
                attention_resolutions: Sequence[int], num_head_channels: int | None, num_heads: int,
                num_groups: int, dropout: float) -> tuple[int, UNetLayout]:
    """Check ``data_shape`` = [C, H, H] and build the layout; returns (image channels C, layout)."""
    if len(data_shape) != 3 or data_shape[1] != data_shape[2]:
        raise ValueError(f"data_shape: the U-Nets need square images [C, H, H], got {tuple(data_shape)}")
    layout = UNetLayout(int(data_shape[1]), int(channels), tuple(int(m) for m in channel_mult),
                        int(num_res_blocks), tuple(int(r) for r in attention_resolutions),
                        None if num_head_channels is None else int(num_head_channels), int(num_heads),
                        int(num_groups), float(dropout))
    return int(data_shape[0]), layout


class _Stage(nn.Module):
    """A ResBlock followed, when ``num_heads`` > 0, by multi-head self-attention (``SelfAttention2d``: fused
    SDPA, residual, output projection zero-initialised)."""

    def __init__(self, block: ResBlock, channels: int, num_heads: int, num_groups: int) -> None:
        super().__init__()
        self.block = block
        self.attn: nn.Module = nn.Identity()
        if num_heads:
            self.attn = SelfAttention2d(channels, num_heads=num_heads, skip_rescale=False, num_groups=num_groups,
                                        out_init_scale=0.0)

    def forward(self, x: Tensor, emb: Tensor, w: Tensor | None) -> Tensor:
        return self.attn(self.block(x, emb, w))


class UNetEncoder(nn.Module):
    """x [B, in_channels, R, R] -> (bottleneck [B, C_last, R_last, R_last], skips): the stem output and
    every encoder stage output, in order. ``skip_channels`` lists their channel counts."""

    def __init__(self, layout: UNetLayout, in_channels: int, w_dim: int = 0) -> None:
        super().__init__()
        block_kw = {"w_dim": w_dim, "dropout": layout.dropout, "num_groups": layout.num_groups}
        ch = layout.level_channels[0]
        self.stem = nn.Conv2d(in_channels, ch, 3, padding=1)
        self.skip_channels = [ch]
        self.stages = nn.ModuleList()
        for level, out_ch in enumerate(layout.level_channels):
            heads = layout.heads_for(out_ch) if layout.attends(level) else 0
            for i in range(layout.num_res_blocks):
                block = ResBlock(ch, out_ch, layout.emb_dim, down=level > 0 and i == 0, **block_kw)
                self.stages.append(_Stage(block, out_ch, heads, layout.num_groups))
                self.skip_channels.append(out_ch)
                ch = out_ch
        self.mid = _Stage(ResBlock(ch, ch, layout.emb_dim, **block_kw), ch, layout.heads_for(ch), layout.num_groups)
        self.mid_out = ResBlock(ch, ch, layout.emb_dim, **block_kw)

    def forward(self, x: Tensor, emb: Tensor, w: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
        h = self.stem(x)
        skips = [h]
        for stage in self.stages:
            h = stage(h, emb, w)
            skips.append(h)
        return self.mid_out(self.mid(h, emb, w), emb, w), skips


class UNetDecoder(nn.Module):
    """(bottleneck, skips) -> [B, channels * channel_mult[0], R, R].

    Level ``i`` (deepest first) has ``num_res_blocks`` stages (one more at level 0, for the stem skip),
    each consuming the newest skip; after its last stage a level above 0 upsamples 2x (nearest).
    """

    def __init__(self, layout: UNetLayout, skip_channels: Sequence[int], w_dim: int = 0) -> None:
        super().__init__()
        block_kw = {"w_dim": w_dim, "dropout": layout.dropout, "num_groups": layout.num_groups}
        skip_channels = list(skip_channels)
        ch = layout.level_channels[-1]
        self.stages = nn.ModuleList()
        upsample_after: list[bool] = []
        for level in reversed(range(len(layout.level_channels))):
            out_ch = layout.level_channels[level]
            heads = layout.heads_for(out_ch) if layout.attends(level) else 0
            count = layout.num_res_blocks + (1 if level == 0 else 0)
            for i in range(count):
                block = ResBlock(ch + skip_channels.pop(), out_ch, layout.emb_dim, **block_kw)
                self.stages.append(_Stage(block, out_ch, heads, layout.num_groups))
                upsample_after.append(level > 0 and i == count - 1)
                ch = out_ch
        self.upsample_after = tuple(upsample_after)

    def forward(self, h: Tensor, skips: list[Tensor], emb: Tensor, w: Tensor | None = None) -> Tensor:
        skips = list(skips)
        for stage, upsample in zip(self.stages, self.upsample_after, strict=True):
            h = stage(torch.cat([h, skips.pop()], dim=1), emb, w)
            if upsample:
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        return h
