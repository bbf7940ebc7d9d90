"""NCSN++ with wavelet-aware resampling (the idea of WaveDiff's wavelet generator, in gdiff's own design).

Registry type ``wavelet_ncsnpp``; the same keys as ``ncsnpp`` (gdiff/nets/ncsnpp.py), whose embeddings, latent
mapping, residual blocks, attention, input pyramid and output it keeps. Three places change, all through the
orthonormal Haar transform of the FEATURES (gdiff/wavelet.py):

* frequency-aware downsampling: a down block splits its input h [B, C, H, W] into subbands; it goes on with the
  low band ``LL / 2`` (the 2 x 2 means) [B, C, H/2, W/2] and hands the high bands [B, 3C, H/2, W/2] to the
  decoder (the wavelet skip);
* frequency-aware upsampling: an up block rebuilds ``ihaar(cat(2 h, P(highs)))`` [B, C', 2H, 2W] from its input h
  [B, C', H, W] and the high bands of the matching encoder level (P: a 1x1 conv when the widths differ, else
  the identity), so detail removed on the way down comes back exactly when h is the low band it started from;
* frequency bottleneck: the middle blocks and attention run on the low band of the bottom features (half their
  resolution); the high bands rejoin through the inverse transform.

The down/up residual blocks themselves no longer resample (the transform does), and the bottom resolution must
be even. With data in subband space (``data.transform: haar``) this is the generator of WaveDiff's CelebA-HQ /
LSUN / STL-10 settings; its CIFAR-10 setting uses plain ``ncsnpp`` on the subbands.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gdiff.nets.ncsnpp import RSQRT2, NCSNppGenerator, ResBlock, conv2d
from gdiff.wavelet import haar, ihaar


def _plain(block: ResBlock) -> ResBlock:
    """A residual block with the sizes, conditioning and dropout of ``block`` but no resampling."""
    return ResBlock(block.conv0.in_channels, block.conv0.out_channels, block.temb.in_features, block.w_dim,
                    dropout=block.dropout.p)


def _split(h: Tensor) -> tuple[Tensor, Tensor]:
    """h [B, C, H, W] -> (low band / 2 [B, C, H/2, W/2], high bands [B, 3C, H/2, W/2])."""
    bands = haar(h)
    return bands[:, : h.shape[1]] / 2, bands[:, h.shape[1]:]


def _merge(low: Tensor, highs: Tensor) -> Tensor:
    """The inverse of :func:`_split`: [B, C, H, W] and [B, 3C, H, W] -> [B, C, 2H, 2W]."""
    return ihaar(torch.cat([2 * low, highs], dim=1))


class WaveletNCSNppGenerator(NCSNppGenerator):
    """x0' = G(x_t, t, z, labels): x_t [B, C, H, H], t [B], z [B, z_dim], labels [B] or None -> [B, C, H, H]."""

    def __init__(self, data_shape: Sequence[int], **kwargs) -> None:
        super().__init__(data_shape, **kwargs)
        levels = len(self.enc_blocks)
        if levels < 2:
            raise ValueError("wavelet_ncsnpp.channel_mult needs at least two levels (one down/up pair)")
        bottom = int(data_shape[1]) >> (levels - 1)
        if bottom % 2:
            raise ValueError(f"wavelet_ncsnpp: the frequency bottleneck halves the bottom resolution {bottom}, "
                             f"which must be even: image size {data_shape[1]} with {levels} levels")
        self.enc_down = nn.ModuleList(_plain(block) for block in self.enc_down)
        self.dec_up = nn.ModuleList(_plain(block) for block in self.dec_up)
        # decoder up i (from the bottom) meets the high bands of encoder down (levels - 2 - i)
        enc_widths = [block.conv0.in_channels for block in self.enc_down]
        dec_widths = [block.conv0.in_channels for block in self.dec_up]
        self.high_proj = nn.ModuleList(
            nn.Identity() if enc_widths[levels - 2 - i] == width else conv2d(3 * enc_widths[levels - 2 - i],
                                                                             3 * width, 1)
            for i, width in enumerate(dec_widths))

    def forward(self, x_t: Tensor, t: Tensor, z: Tensor, labels: Tensor | None = None) -> Tensor:
        e, w = self.conditioning(x_t, t, z, labels)

        h = self.conv_in(x_t)
        skips, highs, pyramid = [h], [], x_t
        for level, (blocks, attns) in enumerate(zip(self.enc_blocks, self.enc_attn, strict=True)):
            for block, attn in zip(blocks, attns, strict=True):
                h = attn(block(h, e, w))
                skips.append(h)
            if level < len(self.enc_down):
                low, high = _split(h)
                highs.append(high)
                h = self.enc_down[level](low, e, w)
                pyramid = (self.pyramid[level](pyramid) + h) * RSQRT2
                h = pyramid
                skips.append(h)

        low, high = _split(h)
        h = _merge(self.mid[1](self.mid_attn(self.mid[0](low, e, w)), e, w), high)

        for i, (blocks, attn) in enumerate(zip(self.dec_blocks, self.dec_attn, strict=True)):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), e, w)
            h = attn(h)
            if i < len(self.dec_up):
                h = self.dec_up[i](_merge(h, self.high_proj[i](highs.pop())), e, w)
        return torch.tanh(self.conv_out(self.act(self.norm_out(h))))
