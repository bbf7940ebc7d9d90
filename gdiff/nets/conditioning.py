"""Conditioning shared by every network: time, class label and latent z.

Time convention: networks receive continuous diffusion times ``t`` in [0, 1], shape [B]
(the schedule's grid times for DDGAN, any time for continuous SIDDM), and embed them here.
Class labels are integer tensors [B] in [0, num_classes); the extra index ``num_classes`` is
the null label, used for ``labels=None`` and for entries equal to -1, so one model can sample
conditionally or unconditionally (classifier-free style).

``time_input: index`` (with ``time_steps: T``) embeds what the DDGAN and WaveDiff code feed their generators
instead: the integer index ``i = round(T t) - 1`` of the grid step from time (i + 1) / T, through score_sde's
positional features (:func:`index_embedding`). Converted reference checkpoints use it (gdiff/convert/).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

TIME_SCALE = 1000.0  # t in [0, 1] is embedded as t * TIME_SCALE, the usual range of sinusoidal features
TIME_INPUTS = ("continuous", "index")  # what the time embedding receives (see the module docstring)


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Transformer-style features of ``t * TIME_SCALE``: [B] -> [B, dim] = [cos(w_k s), sin(w_k s)], dtype of t.

    Frequencies ``w_k = max_period ** (-k / (dim // 2))``, k = 0 .. dim // 2 - 1; an odd ``dim`` is
    padded with one zero column.
    """
    if t.ndim != 1:
        raise ValueError(f"time embedding expects times of shape [B], got {tuple(t.shape)}")
    half = dim // 2
    t = t if t.is_floating_point() else t.float()
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=t.dtype) / half)
    args = (t * TIME_SCALE)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = nn.functional.pad(emb, (0, 1))
    return emb


def index_embedding(t: Tensor, dim: int, num_steps: int, max_positions: float = 10_000.0) -> Tensor:
    """score_sde's positional features of the grid step index: t [B] -> [B, dim] float32.

    ``i = round(num_steps t) - 1`` (grid time (i + 1) / T -> step index i, exact in float32), then
    ``[sin(w_k i), cos(w_k i)]`` with ``w_k = max_positions ** (-k / (dim // 2 - 1))``, k = 0 .. dim // 2 - 1
    (note the ``- 1`` and the sine first, unlike :func:`sinusoidal_embedding`); an odd ``dim`` is padded with
    one zero column.
    """
    if t.ndim != 1:
        raise ValueError(f"time embedding expects times of shape [B], got {tuple(t.shape)}")
    half = dim // 2
    if half < 2:
        raise ValueError(f"index_embedding needs dim >= 4, got {dim}")
    index = torch.round(t.float() * num_steps) - 1
    step = math.log(max_positions) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * -step)
    args = index[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2:
        emb = nn.functional.pad(emb, (0, 1))
    return emb


class TimeEmbedding(nn.Module):
    """t [B] -> [B, dim]: sinusoidal features (``freq_dim``) followed by Linear-SiLU-Linear.

    ``time_input`` (:data:`TIME_INPUTS`): ``continuous`` embeds ``t * TIME_SCALE`` (:func:`sinusoidal_embedding`);
    ``index`` embeds the grid step index of ``num_steps`` steps (:func:`index_embedding`).
    """

    def __init__(self, dim: int, freq_dim: int | None = None, time_input: str = "continuous",
                 num_steps: int = 0) -> None:
        super().__init__()
        if time_input not in TIME_INPUTS:
            raise ValueError(f"time_input must be one of {TIME_INPUTS}, got {time_input!r}")
        if (time_input == "index") != (num_steps >= 1):
            raise ValueError(f"time_input index needs time_steps >= 1 (the grid's number of steps), and "
                             f"time_steps is for time_input index only; got time_input={time_input!r}, "
                             f"time_steps={num_steps!r}")
        self.freq_dim = freq_dim or dim
        self.time_input, self.num_steps = time_input, int(num_steps)
        self.mlp = nn.Sequential(nn.Linear(self.freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        if self.time_input == "index":
            return self.mlp(index_embedding(t, self.freq_dim, self.num_steps))
        return self.mlp(sinusoidal_embedding(t, self.freq_dim))


class ClassEmbedding(nn.Module):
    """labels [B] (or None) -> [B, dim]; index ``num_classes`` (also -1 and None) is the null label."""

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 for a class embedding, got {num_classes}")
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes + 1, dim)

    def resolve(self, labels: Tensor | None, batch: int, device: torch.device) -> Tensor:
        """Integer labels [B] with None / -1 replaced by the null index; checks the range."""
        if labels is None:
            return torch.full((batch,), self.num_classes, dtype=torch.long, device=device)
        if labels.shape != (batch,):
            raise ValueError(f"labels must have shape [{batch}], got {tuple(labels.shape)}")
        labels = labels.long()
        labels = torch.where(labels < 0, torch.full_like(labels, self.num_classes), labels)
        return labels

    def forward(self, labels: Tensor | None, batch: int, device: torch.device) -> Tensor:
        return self.embed(self.resolve(labels, batch, device))


class LatentMapping(nn.Module):
    """z [B, z_dim] -> w [B, w_dim]: PixelNorm, then ``num_layers`` x (Linear, SiLU) (DDGAN's mapping)."""

    def __init__(self, z_dim: int, w_dim: int, num_layers: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = z_dim
        for _ in range(num_layers):
            layers += [nn.Linear(width, w_dim), nn.SiLU()]
            width = w_dim
        self.mlp = nn.Sequential(*layers)
        self.out_dim = width

    def forward(self, z: Tensor) -> Tensor:
        z = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        return self.mlp(z)


class AdaptiveGroupNorm(nn.Module):
    """GroupNorm without affine, then ``gamma * h + beta`` with ``[gamma, beta] = Linear(w)``.

    h: [B, C, H, W]; w: [B, w_dim]. ``gamma`` is initialised to 1 and ``beta`` to 0.
    """

    def __init__(self, num_groups: int, channels: int, w_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(num_groups, channels, affine=False, eps=eps)
        self.style = nn.Linear(w_dim, 2 * channels)
        with torch.no_grad():
            self.style.bias[:channels] = 1.0
            self.style.bias[channels:] = 0.0

    def forward(self, h: Tensor, w: Tensor) -> Tensor:
        gamma, beta = self.style(w)[:, :, None, None].chunk(2, dim=1)
        return gamma * self.norm(h) + beta
