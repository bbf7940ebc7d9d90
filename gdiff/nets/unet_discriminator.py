"""SIDDM's multi-head U-Net discriminator: one shared trunk, separate heads.

The trunk is the generator's U-Net without latent z (``gdiff.nets.unet_blocks``), conditioned on
``emb = TimeEmbedding(t) (+ ClassEmbedding(label))``. Heads:

* ``logits`` [B] (always): from the encoder bottleneck, ``Linear(mean_hw(SiLU(GroupNorm(h))))``, plus with
  ``projection: true`` the projection term ``<ClassEmbedding(label), pooled features>``.
* decoder heads, each a 3x3 conv on ``SiLU(GroupNorm(decoder output))``, zero-initialised:
  ``regression`` (C of SIDDM: x_t predicted from x_prev, shape of x_prev), ``denoised`` (x_0 predicted from
  x_prev, shape of x_prev) and ``pixel_logits`` ([B, H, W] per-pixel real/fake logits).

Only the configured decoder heads are built (so DDP sees no unused parameters when the objective uses all
of them), and the decoder is not built at all when ``heads`` is empty. ``D(x_prev, t)`` runs the encoder
only; ``D(..., heads=names)`` also runs the decoder once and returns a dict. ``pairwise: true``
concatenates x_t to x_prev on channels (DDGAN); the default marginal mode (SIDDM) never reads x_t.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gdiff.nets.conditioning import ClassEmbedding, TimeEmbedding
from gdiff.nets.unet_blocks import UNetDecoder, UNetEncoder, make_layout

DECODER_HEADS = ("regression", "denoised", "pixel_logits")


class UNetDiscriminator(nn.Module):
    """D(x_prev, t, x_t=None, labels=None, heads=()) -> logits [B], or a dict with ``"logits"`` and each
    requested head when ``heads`` is non-empty. x_prev, x_t: [B, C, R, R]; t [B]; labels [B] or None.

    Defaults are the SIDDM CIFAR-10 table (docs/method.md#siddm-settings).
    """

    def __init__(self, data_shape: Sequence[int], channels: int = 256, channel_mult: Sequence[int] = (2, 2, 2),
                 num_res_blocks: int = 2, attention_resolutions: Sequence[int] = (16, 8),
                 num_head_channels: int | None = 64, num_heads: int = 4, dropout: float = 0.1,
                 num_groups: int = 32, heads: Sequence[str] = ("regression", "denoised"),
                 pairwise: bool = False, projection: bool = False, num_classes: int = 0) -> None:
        super().__init__()
        image_channels, layout = make_layout(data_shape, channels, channel_mult, num_res_blocks,
                                             attention_resolutions, num_head_channels, num_heads, num_groups,
                                             dropout)
        if isinstance(heads, str) or any(name not in DECODER_HEADS for name in heads):
            raise ValueError(f"heads must be a list drawn from {list(DECODER_HEADS)}, got {heads!r}")
        if projection and not num_classes:
            raise ValueError("projection: true needs class labels (num_classes > 0)")
        self.heads = frozenset(heads)
        self.pairwise = bool(pairwise)
        self.time = TimeEmbedding(layout.emb_dim, freq_dim=layout.channels)
        self.classes = ClassEmbedding(num_classes, layout.emb_dim) if num_classes else None
        self.encoder = UNetEncoder(layout, image_channels * (2 if self.pairwise else 1))
        bottleneck = layout.level_channels[-1]
        self.logit_norm = nn.GroupNorm(layout.num_groups, bottleneck, eps=1e-6)
        self.logit = nn.Linear(bottleneck, 1)
        self.projection = ClassEmbedding(num_classes, bottleneck) if projection else None
        if self.heads:
            out_ch = layout.level_channels[0]
            self.decoder = UNetDecoder(layout, self.encoder.skip_channels)
            self.out_norm = nn.GroupNorm(layout.num_groups, out_ch, eps=1e-6)
            self.head_convs = nn.ModuleDict({
                name: nn.Conv2d(out_ch, 1 if name == "pixel_logits" else image_channels, 3, padding=1)
                for name in sorted(self.heads)
            })
            for conv in self.head_convs.values():
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)

    def forward(self, x_prev: Tensor, t: Tensor, x_t: Tensor | None = None, labels: Tensor | None = None,
                heads: Sequence[str] = ()) -> Tensor | dict[str, Tensor]:
        unknown = sorted(set(heads) - self.heads)
        if unknown:
            raise ValueError(f"unknown discriminator heads {unknown}; this network has {sorted(self.heads)}")
        x = x_prev
        if self.pairwise:
            if x_t is None:
                raise ValueError("this discriminator judges pairs (pairwise=True): pass x_t")
            x = torch.cat([x_prev, x_t], dim=1)
        batch = x_prev.shape[0]
        emb = self.time(t)
        if self.classes is not None:
            emb = emb + self.classes(labels, batch, x.device)
        h, skips = self.encoder(x, emb)
        pooled = F.silu(self.logit_norm(h)).mean(dim=(2, 3))
        logits = self.logit(pooled).squeeze(1)
        if self.projection is not None:
            logits = logits + (self.projection(labels, batch, x.device) * pooled).sum(dim=1)
        if not heads:
            return logits
        features = F.silu(self.out_norm(self.decoder(h, skips, emb)))
        out = {"logits": logits}
        for name in heads:
            out[name] = self.head_convs[name](features)
        if "pixel_logits" in out:
            out["pixel_logits"] = out["pixel_logits"].squeeze(1)
        return out
