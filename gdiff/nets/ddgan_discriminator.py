"""DDGAN's time-conditioned discriminators (small for 32 px, large for 256 px): ``D(x_prev, t, x_t) -> [B]``.

* input: ``cat(x_prev, x_t)`` on channels (``pairwise=True``, DDGAN) or x_prev alone (``pairwise=False``,
  SIDDM's marginal discriminator: x_t is never read);
* ``e = LeakyReLU(TimeEmbedding(t) [+ ClassEmbedding(labels)])`` of width ``t_emb_dim``;
* 1x1 conv to ``2 channels``, then down blocks. Down block: ``h = conv3x3(LeakyReLU(x)) + Linear(e)``,
  ``h = LeakyReLU(h)``, FIR-downsample h and x (if the block downsamples), ``h = conv3x3(h)`` (near-zero
  init), ``out = (h + conv1x1(x)) / sqrt 2`` (skip conv without bias);
* minibatch standard deviation (groups of ``min(4, B)`` samples, one feature): the std over each group,
  averaged over channels and positions, appended as a channel;
* 3x3 conv, LeakyReLU, sum over positions -> feature f [B, 8 channels]; ``logit = Linear(f)``, plus
  ``<ProjEmbedding(labels), f>`` with ``projection=True`` (class-conditional projection discriminator).

No normalisation layers. LeakyReLU slope 0.2 throughout.
Widths in units of ``channels`` (DDGAN's ``ngf``), 12.7 M and 27.7 M parameters at ``channels=64``:
small (32 px) 2 -> 2 -> 4 (down) -> 8 (down) -> 8 (down); large (256 px) 2 -> 4 -> 8 -> 8 -> 8 -> 8 -> 8,
every block halving the resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gdiff.nets.conditioning import ClassEmbedding, TimeEmbedding
from gdiff.nets.fir import DEFAULT_TAPS, FIRDownsample
from gdiff.nets.ncsnpp import NEAR_ZERO, conv2d, init_conv_

SLOPE = 0.2
STDDEV_GROUP = 4


def minibatch_stddev(h: Tensor, group: int = STDDEV_GROUP) -> Tensor:
    """[B, C, H, W] -> [B, C + 1, H, W]: append the mean over (C, H, W) of the per-position std in a group.

    Sample b belongs to group ``b % (B / G)`` with G = the largest divisor of B not above ``group``
    (StyleGAN2's layout). Computed in float32.
    """
    batch, _, height, width = h.shape
    g = max(d for d in range(1, min(group, batch) + 1) if batch % d == 0)
    stats = h.float().reshape(g, batch // g, -1)
    std = torch.sqrt(stats.var(dim=0, unbiased=False) + 1e-8).mean(dim=1)  # [B / G]
    std = std.repeat(g).to(h.dtype)[:, None, None, None].expand(batch, 1, height, width)
    return torch.cat([h, std], dim=1)


class DownBlock(nn.Module):
    """x [B, in_ch, H, W], e [B, t_emb_dim] -> [B, out_ch, H', W'] (H' = H / 2 if ``down`` else H)."""

    def __init__(self, in_ch: int, out_ch: int, t_emb_dim: int, down: bool,
                 taps: Sequence[float] = DEFAULT_TAPS) -> None:
        super().__init__()
        self.conv0 = conv2d(in_ch, out_ch, 3)
        self.temb = init_conv_(nn.Linear(t_emb_dim, out_ch))
        self.down = FIRDownsample(taps) if down else None
        self.conv1 = conv2d(out_ch, out_ch, 3, scale=NEAR_ZERO)
        self.skip = conv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        h = self.conv0(F.leaky_relu(x, SLOPE)) + self.temb(e)[:, :, None, None]
        h = F.leaky_relu(h, SLOPE)
        if self.down is not None:
            h, x = self.down(h), self.down(x)
        return (self.conv1(h) + self.skip(x)) * (1 / math.sqrt(2))


class DDGANDiscriminator(nn.Module):
    """logits = D(x_prev, t, x_t=None, labels=None): x_prev, x_t [B, C, H, W], t [B] in [0, 1] -> [B].

    ``layout`` lists (width multiplier of ``channels``, downsample?) per down block; the subclasses fix the
    paper's two layouts. ``heads`` is empty: this network only gives the real/fake logit.
    """

    registry_name = "ddgan_discriminator"
    stddev_group = STDDEV_GROUP  # the Trainer checks that every micro-batch splits into such groups
    heads: frozenset[str] = frozenset()
    layout: tuple[tuple[int, bool], ...] = ()

    def __init__(self, data_shape: Sequence[int], channels: int = 64, t_emb_dim: int = 256,
                 pairwise: bool = True, num_classes: int = 0, projection: bool = False,
                 fir_taps: Sequence[float] = DEFAULT_TAPS) -> None:
        super().__init__()
        name = type(self).registry_name
        if len(data_shape) != 3:
            raise ValueError(f"{name}: data_shape must be [C, H, W], got {tuple(data_shape)}")
        downs = sum(down for _, down in self.layout)
        if data_shape[1] % 2 ** downs or data_shape[2] % 2 ** downs:
            raise ValueError(f"{name}: {downs} downsamplings need H and W divisible by {2 ** downs}, "
                             f"got data_shape {tuple(data_shape)}")
        if channels < 1 or t_emb_dim < 1:
            raise ValueError(f"{name}: channels and t_emb_dim must be >= 1, got channels={channels}, "
                             f"t_emb_dim={t_emb_dim}")
        if projection and not num_classes:
            raise ValueError(f"{name}.projection needs a class-conditional data set (num_classes > 0)")
        self.pairwise = bool(pairwise)
        self.time_embed = TimeEmbedding(t_emb_dim)
        self.class_embed = ClassEmbedding(num_classes, t_emb_dim) if num_classes else None
        in_ch = data_shape[0] * (2 if self.pairwise else 1)
        width = 2 * channels
        self.conv_in = conv2d(in_ch, width, 1)
        blocks = []
        for mult, down in self.layout:
            blocks.append(DownBlock(width, channels * mult, t_emb_dim, down, fir_taps))
            width = channels * mult
        self.blocks = nn.ModuleList(blocks)
        self.conv_out = conv2d(width + 1, width, 3, scale=NEAR_ZERO)
        self.linear = init_conv_(nn.Linear(width, 1))
        self.projection = ClassEmbedding(num_classes, width) if projection else None

    def forward(self, x_prev: Tensor, t: Tensor, x_t: Tensor | None = None, labels: Tensor | None = None,
                heads: Sequence[str] = ()) -> Tensor:
        if heads:
            raise ValueError(f"{type(self).registry_name} has no heads besides the logits; asked for "
                             f"{sorted(heads)}")
        batch = x_prev.shape[0]
        e = self.time_embed(t)
        if self.class_embed is not None:
            e = e + self.class_embed(labels, batch, x_prev.device)
        e = F.leaky_relu(e, SLOPE)
        if self.pairwise:
            if x_t is None:
                raise ValueError("this discriminator judges pairs (pairwise=True): pass x_t")
            x_prev = torch.cat([x_prev, x_t], dim=1)
        h = self.conv_in(x_prev)
        for block in self.blocks:
            h = block(h, e)
        h = F.leaky_relu(self.conv_out(minibatch_stddev(h)), SLOPE)
        f = h.sum(dim=(2, 3))
        logits = self.linear(f).squeeze(1)
        if self.projection is not None:
            logits = logits + (self.projection(labels, batch, x_prev.device) * f).sum(dim=1)
        return logits


class DDGANSmallDiscriminator(DDGANDiscriminator):
    """32 px discriminator: 4 down blocks, 3 of them halve the resolution (32 -> 4)."""

    registry_name = "ddgan_small"
    layout = ((2, False), (4, True), (8, True), (8, True))


class DDGANLargeDiscriminator(DDGANDiscriminator):
    """256 px discriminator: 6 down blocks, each halves the resolution (256 -> 4)."""

    registry_name = "ddgan_large"
    layout = ((4, True), (8, True), (8, True), (8, True), (8, True), (8, True))
