"""SIDDM's generator: an ADM-style U-Net predicting x_0 from (x_t, t, z, label).

``emb = TimeEmbedding(t) (+ ClassEmbedding(label))`` [B, 4 * channels] scales and shifts every residual
block; ``w = LatentMapping(z)`` [B, w_dim] drives adaptive GroupNorm in every residual block, which makes
the generator multimodal (``z_dim: 0``: no latent, plain GroupNorm, DDGAN's "no z" ablation). Encoder and
decoder are ``gdiff.nets.unet_blocks``; the output is
``conv(SiLU(GroupNorm(h)))`` with the conv zero-initialised, then tanh (``tanh_output``) for data in [-1, 1].
Defaults are the SIDDM CIFAR-10 table (docs/method.md#siddm-settings).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gdiff.nets.conditioning import ClassEmbedding, LatentMapping, TimeEmbedding
from gdiff.nets.unet_blocks import UNetDecoder, UNetEncoder, make_layout


class UNetGenerator(nn.Module):
    """x0' = G(x_t, t, z, labels): x_t [B, C_in, R, R], t [B] in [0, 1], z [B, z_dim], labels [B] or None
    -> [B, C, R, R]. ``input_shape`` ([C_in, R, R], default ``data_shape``) lets x_t be wider than x0 (a
    phase-space state (x, v) of CLD: C_in = 2 C).

    ``labels=None`` or entries -1 select the null label of a class-conditional model (``num_classes > 0``);
    an unconditional model ignores labels.
    """

    def __init__(self, data_shape: Sequence[int], channels: int = 256, channel_mult: Sequence[int] = (2, 2, 2),
                 num_res_blocks: int = 2, attention_resolutions: Sequence[int] = (16, 8),
                 num_head_channels: int | None = 64, num_heads: int = 4, dropout: float = 0.1,
                 num_groups: int = 32, z_dim: int = 100, w_dim: int = 256, mapping_layers: int = 4,
                 num_classes: int = 0, tanh_output: bool = True, input_shape: Sequence[int] | None = None) -> None:
        super().__init__()
        image_channels, layout = make_layout(data_shape, channels, channel_mult, num_res_blocks,
                                             attention_resolutions, num_head_channels, num_heads, num_groups,
                                             dropout)
        if z_dim < 0:
            raise ValueError(f"z_dim must be >= 0 (0: no latent, a deterministic generator), got {z_dim}")
        if w_dim < 1 or mapping_layers < 1:
            raise ValueError(f"w_dim and mapping_layers must be >= 1, got w_dim={w_dim}, "
                             f"mapping_layers={mapping_layers}")
        self.z_dim = int(z_dim)
        self.tanh_output = bool(tanh_output)
        self.time = TimeEmbedding(layout.emb_dim, freq_dim=layout.channels)
        self.classes = ClassEmbedding(num_classes, layout.emb_dim) if num_classes else None
        self.mapping = LatentMapping(self.z_dim, int(w_dim), int(mapping_layers)) if self.z_dim else None
        style_dim = self.mapping.out_dim if self.mapping is not None else 0  # 0: plain GroupNorm, no latent
        input_shape = tuple(data_shape) if input_shape is None else tuple(input_shape)
        if input_shape[1:] != tuple(data_shape)[1:]:
            raise ValueError(f"generator.input_shape {input_shape} must have the resolution of data_shape "
                             f"{tuple(data_shape)}")
        self.encoder = UNetEncoder(layout, int(input_shape[0]), w_dim=style_dim)
        self.decoder = UNetDecoder(layout, self.encoder.skip_channels, w_dim=style_dim)
        out_ch = layout.level_channels[0]
        self.out_norm = nn.GroupNorm(layout.num_groups, out_ch, eps=1e-6)
        self.out_conv = nn.Conv2d(out_ch, image_channels, 3, padding=1)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    def forward(self, x_t: Tensor, t: Tensor, z: Tensor, labels: Tensor | None = None) -> Tensor:
        emb = self.time(t)
        if self.classes is not None:
            emb = emb + self.classes(labels, x_t.shape[0], x_t.device)
        w = self.mapping(z) if self.mapping is not None else None
        h, skips = self.encoder(x_t, emb, w)
        h = self.decoder(h, skips, emb, w)
        out = self.out_conv(F.silu(self.out_norm(h)))
        return torch.tanh(out) if self.tanh_output else out
