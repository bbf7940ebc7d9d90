"""NCSN++ U-Net generator with a latent z (DDGAN's generator): ``x0' = G(x_t, t, z, labels)``.

Layout (L = len(ch_mult) levels, resolution r_i = image_size / 2^i, width c_i = ch * ch_mult[i]):

* conditioning: ``e = TimeEmbedding(t)`` (sinusoidal features of width ``ch`` -> MLP to ``4 ch``), plus a
  class embedding when ``num_classes > 0``; every residual block adds ``Linear(SiLU(e))`` as a per-channel
  bias. ``w = LatentMapping(z)`` (PixelNorm, Linear z_dim -> w_dim, then ``n_mlp`` x Linear w_dim -> w_dim,
  SiLU after each) drives the adaptive GroupNorm of every residual block.
* encoder: 3x3 conv to ``ch``; per level ``num_res_blocks`` residual blocks (self-attention after each one
  at resolutions in ``attn_resolutions``), then (except at the last level) a down-sampling residual block
  and the residual input pyramid: ``p <- (FIRConvDownsample(p) + h) / sqrt 2``, ``h <- p`` (p starts as x_t).
* middle: residual block, self-attention, residual block.
* decoder: per level from the bottom, ``num_res_blocks + 1`` residual blocks on ``cat(h, skip)``,
  self-attention at ``attn_resolutions``, then an up-sampling residual block (except at the top).
* output: GroupNorm, SiLU, 3x3 conv (near-zero init), tanh.

Residual block (BigGAN-style with adaptive GroupNorm): ``h = SiLU(AdaGN(x, w))``, FIR-resample h and x if
up/down, ``h = conv3x3(h) + Linear(SiLU(e))``, ``h = conv3x3(Dropout(SiLU(AdaGN(h, w))))`` (near-zero init),
``x = conv1x1(x)`` when the width changes or the block resamples, ``out = (x + h) / sqrt 2``.
GroupNorms use min(C // 4, 32) groups. Convolutions use Xavier-uniform init and zero biases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gdiff.nets.attention import SelfAttention2d
from gdiff.nets.conditioning import AdaptiveGroupNorm, ClassEmbedding, LatentMapping, TimeEmbedding
from gdiff.nets.fir import DEFAULT_TAPS, FIRConvDownsample, FIRDownsample, FIRUpsample

NEAR_ZERO = 1e-10  # variance scale of the "zero-initialised" output convolutions (as in NCSN++)
RSQRT2 = 1 / math.sqrt(2)


def init_conv_(conv: nn.Conv2d | nn.Linear, scale: float = 1.0) -> nn.Module:
    """Xavier-uniform weights with variance scaled by ``scale`` and zero bias (NCSN++ ``default_init``)."""
    nn.init.xavier_uniform_(conv.weight, gain=math.sqrt(scale))
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def conv2d(in_ch: int, out_ch: int, kernel_size: int, scale: float = 1.0, bias: bool = True) -> nn.Conv2d:
    """Same-padded convolution with :func:`init_conv_` initialisation."""
    conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=bias)
    init_conv_(conv, scale)
    return conv


def _groups(channels: int) -> int:
    groups = min(channels // 4, 32)
    if groups < 1 or channels % groups:
        raise ValueError(f"ncsnpp.ch / ch_mult: a feature width of {channels} does not split into "
                         f"min(C // 4, 32) = {groups} GroupNorm groups; use multiples of 32 above 128")
    return groups


class ResBlock(nn.Module):
    """BigGAN-style residual block: x [B, in_ch, H, W], e_act [B, temb_dim], w [B, w_dim]
    -> [B, out_ch, H', W'] with H' = 2H (``up``), H / 2 (``down``) or H."""

    def __init__(self, in_ch: int, out_ch: int, temb_dim: int, w_dim: int, up: bool = False,
                 down: bool = False, dropout: float = 0.0, taps: Sequence[float] = DEFAULT_TAPS) -> None:
        super().__init__()
        self.norm0 = AdaptiveGroupNorm(_groups(in_ch), in_ch, w_dim)
        self.resample = FIRUpsample(taps) if up else FIRDownsample(taps) if down else None
        self.conv0 = conv2d(in_ch, out_ch, 3)
        self.temb = init_conv_(nn.Linear(temb_dim, out_ch))
        self.norm1 = AdaptiveGroupNorm(_groups(out_ch), out_ch, w_dim)
        self.dropout = nn.Dropout(dropout)
        self.conv1 = conv2d(out_ch, out_ch, 3, scale=NEAR_ZERO)
        self.skip = conv2d(in_ch, out_ch, 1) if in_ch != out_ch or up or down else None
        self.act = nn.SiLU()

    def forward(self, x: Tensor, e_act: Tensor, w: Tensor) -> Tensor:
        h = self.act(self.norm0(x, w))
        if self.resample is not None:
            h, x = self.resample(h), self.resample(x)
        h = self.conv0(h) + self.temb(e_act)[:, :, None, None]
        h = self.conv1(self.dropout(self.act(self.norm1(h, w))))
        if self.skip is not None:
            x = self.skip(x)
        return (x + h) * RSQRT2


class NCSNppGenerator(nn.Module):
    """x0' = G(x_t, t, z, labels): x_t [B, C, H, H], t [B] in [0, 1], z [B, z_dim], labels [B] or None
    -> [B, C, H, H] in [-1, 1].

    ``n_mlp`` counts the w_dim -> w_dim layers of the mapping network after its first layer (DDGAN's
    ``--n_mlp``). Paper configurations: CIFAR-10 ``ch=128, ch_mult=(1, 2, 2, 2), n_mlp=4`` (48.4 M
    parameters); 256 px ``ch=64, ch_mult=(1, 1, 2, 2, 4, 4), n_mlp=3`` (39.7 M); attention at 16 in both.
    """

    def __init__(self, data_shape: Sequence[int], ch: int = 128, ch_mult: Sequence[int] = (1, 2, 2, 2),
                 num_res_blocks: int = 2, attn_resolutions: Sequence[int] = (16,), attn_heads: int = 1,
                 dropout: float = 0.0, z_dim: int = 100, w_dim: int = 256, n_mlp: int = 4,
                 fir_taps: Sequence[float] = DEFAULT_TAPS, num_classes: int = 0) -> None:
        super().__init__()
        channels, size = _check_config(data_shape, ch, ch_mult, num_res_blocks, attn_resolutions, z_dim,
                                       n_mlp)
        self.z_dim = int(z_dim)
        temb_dim = 4 * ch
        self.time_embed = TimeEmbedding(temb_dim, freq_dim=ch)
        self.class_embed = ClassEmbedding(num_classes, temb_dim) if num_classes else None
        self.mapping = LatentMapping(self.z_dim, w_dim, n_mlp + 1)
        self.act = nn.SiLU()

        def block(in_ch: int, out_ch: int, **kw: bool) -> ResBlock:
            return ResBlock(in_ch, out_ch, temb_dim, w_dim, dropout=dropout, taps=fir_taps, **kw)

        def attention(width: int, level: int) -> nn.Module:
            use = size >> level in attn_resolutions
            return SelfAttention2d(width, num_heads=attn_heads) if use else nn.Identity()

        widths = [ch * m for m in ch_mult]
        last = len(widths) - 1
        self.conv_in = conv2d(channels, ch, 3)
        self.enc_blocks, self.enc_attn = nn.ModuleList(), nn.ModuleList()
        self.enc_down, self.pyramid = nn.ModuleList(), nn.ModuleList()
        skip_widths, width, pyramid_width = [ch], ch, channels
        for level, out_ch in enumerate(widths):
            blocks, attns = nn.ModuleList(), nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(block(width, out_ch))
                attns.append(attention(out_ch, level))
                width = out_ch
                skip_widths.append(width)
            self.enc_blocks.append(blocks)
            self.enc_attn.append(attns)
            if level < last:
                self.enc_down.append(block(width, width, down=True))
                pyramid = FIRConvDownsample(pyramid_width, width, fir_taps)
                init_conv_(pyramid.conv)
                self.pyramid.append(pyramid)
                pyramid_width = width
                skip_widths.append(width)

        self.mid = nn.ModuleList([block(width, width), block(width, width)])
        self.mid_attn = SelfAttention2d(width, num_heads=attn_heads)

        self.dec_blocks, self.dec_attn, self.dec_up = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for level in reversed(range(len(widths))):  # stored from the bottom level up
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(block(width + skip_widths.pop(), widths[level]))
                width = widths[level]
            self.dec_blocks.append(blocks)
            self.dec_attn.append(attention(width, level))
            if level > 0:
                self.dec_up.append(block(width, width, up=True))

        self.norm_out = nn.GroupNorm(_groups(width), width, eps=1e-6)
        self.conv_out = conv2d(width, channels, 3, scale=NEAR_ZERO)

    def forward(self, x_t: Tensor, t: Tensor, z: Tensor, labels: Tensor | None = None) -> Tensor:
        batch = x_t.shape[0]
        if z.shape != (batch, self.z_dim):
            raise ValueError(f"z must have shape [{batch}, {self.z_dim}], got {tuple(z.shape)}")
        e = self.time_embed(t)
        if self.class_embed is not None:
            e = e + self.class_embed(labels, batch, x_t.device)
        e = self.act(e)
        w = self.mapping(z)

        h = self.conv_in(x_t)
        skips, pyramid = [h], x_t
        for level, (blocks, attns) in enumerate(zip(self.enc_blocks, self.enc_attn, strict=True)):
            for block, attn in zip(blocks, attns, strict=True):
                h = attn(block(h, e, w))
                skips.append(h)
            if level < len(self.enc_down):
                h = self.enc_down[level](h, e, w)
                pyramid = (self.pyramid[level](pyramid) + h) * RSQRT2
                h = pyramid
                skips.append(h)

        h = self.mid[1](self.mid_attn(self.mid[0](h, e, w)), e, w)

        for i, (blocks, attn) in enumerate(zip(self.dec_blocks, self.dec_attn, strict=True)):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), e, w)
            h = attn(h)
            if i < len(self.dec_up):
                h = self.dec_up[i](h, e, w)
        return torch.tanh(self.conv_out(self.act(self.norm_out(h))))


def _check_config(data_shape: Sequence[int], ch: int, ch_mult: Sequence[int], num_res_blocks: int,
                  attn_resolutions: Sequence[int], z_dim: int, n_mlp: int) -> tuple[int, int]:
    """Validate the recipe keys; returns (image channels, image size)."""
    if len(data_shape) != 3 or data_shape[1] != data_shape[2]:
        raise ValueError(f"ncsnpp: data_shape must be [C, H, H] (square images), got {tuple(data_shape)}")
    channels, size = int(data_shape[0]), int(data_shape[1])
    if ch < 4 or ch % 4:
        raise ValueError(f"ncsnpp.ch must be a positive multiple of 4 (GroupNorm groups), got {ch}")
    if not ch_mult or any(int(m) < 1 for m in ch_mult):
        raise ValueError(f"ncsnpp.ch_mult must be a non-empty list of positive ints, got {list(ch_mult)}")
    if size % 2 ** (len(ch_mult) - 1):
        raise ValueError(f"ncsnpp.ch_mult: {len(ch_mult)} levels need the image size {size} to be divisible "
                         f"by {2 ** (len(ch_mult) - 1)}")
    if num_res_blocks < 1:
        raise ValueError(f"ncsnpp.num_res_blocks must be >= 1, got {num_res_blocks}")
    resolutions = {size >> i for i in range(len(ch_mult))}
    if not set(attn_resolutions) <= resolutions:
        raise ValueError(f"ncsnpp.attn_resolutions {list(attn_resolutions)} must be among the resolutions "
                         f"{sorted(resolutions)}")
    if z_dim < 1 or n_mlp < 0:
        raise ValueError(f"ncsnpp: z_dim must be >= 1 and n_mlp >= 0, got z_dim={z_dim}, n_mlp={n_mlp}")
    return channels, size
