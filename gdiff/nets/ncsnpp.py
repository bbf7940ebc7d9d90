"""NCSN++ U-Net generator with a latent z (DDGAN's generator): ``x0' = G(x_t, t, z, labels)``.

Layout (L = len(channel_mult) levels; level i works at image_size / 2^i pixels with
channels * channel_mult[i] feature maps):

* conditioning: ``e = TimeEmbedding(t)`` (sinusoidal features of width ``channels``, MLP to ``4 channels``;
  ``time_input: index`` with ``time_steps: T`` embeds the grid step index as the DDGAN code does, see
  gdiff/nets/conditioning.py),
  plus a class embedding when ``num_classes > 0``; every residual block adds ``Linear(SiLU(e))`` as a
  per-channel bias. ``w = LatentMapping(z)`` (PixelNorm, then ``mapping_layers`` x (Linear to w_dim, SiLU))
  drives the adaptive GroupNorm of every residual block; ``z_dim: 0`` drops the latent (plain GroupNorm).
* encoder: 3x3 conv to ``channels``; per level ``num_res_blocks`` residual blocks (self-attention after
  each one at the levels in ``attention_resolutions``), then (except at the last level) a down-sampling
  residual block and the residual input pyramid: ``p <- (FIRConvDownsample(p) + h) / sqrt 2``, ``h <- p``
  (p starts as x_t).
* middle: residual block, self-attention, residual block.
* decoder: per level from the bottom, ``num_res_blocks + 1`` residual blocks on ``cat(h, skip)``,
  self-attention at ``attention_resolutions``, then an up-sampling residual block (except at the top).
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
        raise ValueError(f"ncsnpp.channels / channel_mult: a feature width of {channels} does not split into "
                         f"min(C // 4, 32) = {groups} GroupNorm groups; use multiples of 32 above 128")
    return groups


def _norm(channels: int, w_dim: int) -> nn.Module:
    """Adaptive GroupNorm driven by the mapped latent w [B, w_dim], or a plain GroupNorm when w_dim = 0."""
    if w_dim:
        return AdaptiveGroupNorm(_groups(channels), channels, w_dim)
    return nn.GroupNorm(_groups(channels), channels, eps=1e-6)


class ResBlock(nn.Module):
    """BigGAN-style residual block: x [B, in_ch, H, W], e_act [B, temb_dim], w [B, w_dim]
    -> [B, out_ch, H', W'] with H' = 2H (``up``), H / 2 (``down``) or H."""

    def __init__(self, in_ch: int, out_ch: int, temb_dim: int, w_dim: int, up: bool = False,
                 down: bool = False, dropout: float = 0.0, taps: Sequence[float] = DEFAULT_TAPS) -> None:
        super().__init__()
        self.w_dim = w_dim  # 0: no latent, plain GroupNorm with affine parameters
        self.norm0 = _norm(in_ch, w_dim)
        self.resample = FIRUpsample(taps) if up else FIRDownsample(taps) if down else None
        self.conv0 = conv2d(in_ch, out_ch, 3)
        self.temb = init_conv_(nn.Linear(temb_dim, out_ch))
        self.norm1 = _norm(out_ch, w_dim)
        self.dropout = nn.Dropout(dropout)
        self.conv1 = conv2d(out_ch, out_ch, 3, scale=NEAR_ZERO)
        self.skip = conv2d(in_ch, out_ch, 1) if in_ch != out_ch or up or down else None
        self.act = nn.SiLU()

    def _normed(self, norm: nn.Module, h: Tensor, w: Tensor | None) -> Tensor:
        return norm(h, w) if self.w_dim else norm(h)

    def forward(self, x: Tensor, e_act: Tensor, w: Tensor | None) -> Tensor:
        h = self.act(self._normed(self.norm0, x, w))
        if self.resample is not None:
            h, x = self.resample(h), self.resample(x)
        h = self.conv0(h) + self.temb(e_act)[:, :, None, None]
        h = self.conv1(self.dropout(self.act(self._normed(self.norm1, h, w))))
        if self.skip is not None:
            x = self.skip(x)
        return (x + h) * RSQRT2


class NCSNppGenerator(nn.Module):
    """x0' = G(x_t, t, z, labels): x_t [B, C, H, H], t [B] in [0, 1], z [B, z_dim], labels [B] or None
    -> [B, C, H, H] in [-1, 1].

    ``mapping_layers`` counts every Linear of the mapping network: DDGAN's ``--n_mlp N`` is N + 1.
    Paper configurations (attention at 16 px in both): CIFAR-10 ``channels=128, channel_mult=(1, 2, 2, 2),
    mapping_layers=5`` (48.4 M parameters); 256 px ``channels=64, channel_mult=(1, 1, 2, 2, 4, 4),
    mapping_layers=4`` (39.7 M). ``num_heads`` splits each attention layer into heads (1 in NCSN++).
    """

    def __init__(self, data_shape: Sequence[int], channels: int = 128,
                 channel_mult: Sequence[int] = (1, 2, 2, 2), num_res_blocks: int = 2,
                 attention_resolutions: Sequence[int] = (16,), num_heads: int = 1,
                 dropout: float = 0.0, z_dim: int = 100, w_dim: int = 256, mapping_layers: int = 5,
                 fir_taps: Sequence[float] = DEFAULT_TAPS, num_classes: int = 0, time_input: str = "continuous",
                 time_steps: int = 0) -> None:
        super().__init__()
        image_channels, size = _check_config(data_shape, channels, channel_mult, num_res_blocks,
                                             attention_resolutions, z_dim, mapping_layers)
        self.z_dim = int(z_dim)
        temb_dim = 4 * channels
        self.time_embed = TimeEmbedding(temb_dim, freq_dim=channels, time_input=time_input, num_steps=time_steps)
        self.class_embed = ClassEmbedding(num_classes, temb_dim) if num_classes else None
        self.mapping = LatentMapping(self.z_dim, w_dim, mapping_layers) if self.z_dim else None
        style_dim = w_dim if self.z_dim else 0  # z_dim 0: no latent, plain GroupNorm
        self.act = nn.SiLU()

        def block(in_ch: int, out_ch: int, **kw: bool) -> ResBlock:
            return ResBlock(in_ch, out_ch, temb_dim, style_dim, dropout=dropout, taps=fir_taps, **kw)

        def attention(width: int, level: int) -> nn.Module:
            use = size >> level in attention_resolutions
            return SelfAttention2d(width, num_heads=num_heads) if use else nn.Identity()

        widths = [channels * m for m in channel_mult]
        last = len(widths) - 1
        self.conv_in = conv2d(image_channels, channels, 3)
        self.enc_blocks, self.enc_attn = nn.ModuleList(), nn.ModuleList()
        self.enc_down, self.pyramid = nn.ModuleList(), nn.ModuleList()
        skip_widths, width, pyramid_width = [channels], channels, image_channels
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
        self.mid_attn = SelfAttention2d(width, num_heads=num_heads)

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
        self.conv_out = conv2d(width, image_channels, 3, scale=NEAR_ZERO)

    def conditioning(self, x_t: Tensor, t: Tensor, z: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """(time and class embedding e [B, E], mapped latent w [B, W] or None without a latent)."""
        batch = x_t.shape[0]
        if z.shape != (batch, self.z_dim):
            raise ValueError(f"z must have shape [{batch}, {self.z_dim}], got {tuple(z.shape)}")
        e = self.time_embed(t)
        if self.class_embed is not None:
            e = e + self.class_embed(labels, batch, x_t.device)
        return self.act(e), self.mapping(z) if self.mapping is not None else None

    def forward(self, x_t: Tensor, t: Tensor, z: Tensor, labels: Tensor | None = None) -> Tensor:
        e, w = self.conditioning(x_t, t, z, labels)

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


def _check_config(data_shape: Sequence[int], channels: int, channel_mult: Sequence[int], num_res_blocks: int,
                  attention_resolutions: Sequence[int], z_dim: int, mapping_layers: int) -> tuple[int, int]:
    """Validate the recipe keys; returns (image channels, image size)."""
    if len(data_shape) != 3 or data_shape[1] != data_shape[2]:
        raise ValueError(f"ncsnpp: data_shape must be [C, H, H] (square images), got {tuple(data_shape)}")
    image_channels, size = int(data_shape[0]), int(data_shape[1])
    if channels < 4 or channels % 4:
        raise ValueError(f"ncsnpp.channels must be a positive multiple of 4 (GroupNorm groups), "
                         f"got {channels}")
    if not channel_mult or any(int(m) < 1 for m in channel_mult):
        raise ValueError(f"ncsnpp.channel_mult must be a non-empty list of positive ints, "
                         f"got {list(channel_mult)}")
    if size % 2 ** (len(channel_mult) - 1):
        raise ValueError(f"ncsnpp.channel_mult: {len(channel_mult)} levels need the image size {size} to be "
                         f"divisible by {2 ** (len(channel_mult) - 1)}")
    if num_res_blocks < 1:
        raise ValueError(f"ncsnpp.num_res_blocks must be >= 1, got {num_res_blocks}")
    resolutions = {size >> i for i in range(len(channel_mult))}
    if not set(attention_resolutions) <= resolutions:
        raise ValueError(f"ncsnpp.attention_resolutions {list(attention_resolutions)} must be among the "
                         f"levels' resolutions {sorted(resolutions)}")
    if z_dim < 0 or mapping_layers < 1:
        raise ValueError(f"ncsnpp: z_dim must be >= 0 (0: no latent) and mapping_layers >= 1, got z_dim={z_dim}, "
                         f"mapping_layers={mapping_layers}")
    return image_channels, size
