"""Small MLPs for low-dimensional data (the 25-Gaussians and 1-D mixtures).

Generator: ``h = MLP(W_x x_t + W_e e(t) + W_z z)``, then ``x0' = Linear([h_out, x_t])`` (learned skip from x_t);
``z_dim: 0`` drops the latent (a deterministic generator, DDGAN's "no z" ablation). ``input_shape`` [D_in] lets
it read a wider x_t than the x0 [D] it predicts (a phase-space state (x, v) of CLD: D_in = 2 D).
Discriminator: a shared trunk ``MLP(W_x x_prev + W_t x_t + W_e e(t))`` with one linear head per output.

``scale`` preconditions unnormalised data (``data.normalize: false``): both networks divide the points they
read by it, the generator multiplies its x0 prediction by it and the discriminator its point-valued heads.
``fourier_features: n`` adds ``2 n`` fixed random Fourier features (frequencies ~ N(0, ``fourier_scale``^2))
of each (scaled) point input as one more input group; ``activation`` is silu, relu or leaky_relu (0.2).

Each input group has its own first-layer projection (summed), so that its initial weights are scaled by its
own fan-in: with one concatenated layer, a 2-D point beside 32 time features gets weights ~ 1/sqrt(34) and
the network starts out nearly linear in x, which stalls a discriminator on low-dimensional data.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gdiff.nets.conditioning import ClassEmbedding, sinusoidal_embedding

ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2)}


class _Trunk(nn.Module):
    """inputs [B, d_i] -> [B, width]: act(sum_i W_i x_i + b), then ``depth - 1`` x (Linear, act)."""

    def __init__(self, input_dims: Sequence[int], width: int, depth: int, activation: str = "silu") -> None:
        super().__init__()
        for key, value in (("width", width), ("depth", depth)):
            if value < 1:
                raise ValueError(f"{key} must be >= 1, got {value}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        act = ACTIVATIONS[activation]
        self.inputs = nn.ModuleList(nn.Linear(d, width, bias=i == 0) for i, d in enumerate(input_dims))
        layers: list[nn.Module] = [act()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), act()]
        self.mlp = nn.Sequential(*layers)

    def forward(self, *xs: Tensor) -> Tensor:
        return self.mlp(sum(proj(x) for proj, x in zip(self.inputs, xs, strict=True)))


class _Fourier(nn.Module):
    """x [B, D] -> [B, 2 n] = [sin(2 pi x W), cos(2 pi x W)] with fixed W ~ N(0, sigma^2) [D, n] (Tancik et al.)."""

    def __init__(self, dim: int, num: int, sigma: float) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.randn(dim, num) * sigma)

    def forward(self, x: Tensor) -> Tensor:
        args = 2 * torch.pi * x @ self.freqs.to(x.dtype)
        return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class _TimeLabelFeatures(nn.Module):
    """t [B] (and labels) -> [B, time_dim] sinusoidal features, plus a class embedding if conditional."""

    def __init__(self, time_dim: int, num_classes: int) -> None:
        super().__init__()
        self.time_dim = time_dim
        self.classes = ClassEmbedding(num_classes, time_dim) if num_classes else None

    def forward(self, t: Tensor, labels: Tensor | None) -> Tensor:
        emb = sinusoidal_embedding(t, self.time_dim)
        if self.classes is not None:
            emb = emb + self.classes(labels, t.shape[0], t.device)
        return emb


class ToyGenerator(nn.Module):
    """x0' = G(x_t, t, z): x_t [B, D_in], t [B], z [B, z_dim] -> [B, D].

    ``z_dim`` defaults to D; ``z_dim=0`` means no latent (z is then [B, 0] and ignored). ``input_shape``
    ([D_in], default ``data_shape``): the shape of x_t.
    """

    def __init__(self, data_shape: Sequence[int], width: int = 128, depth: int = 3, time_dim: int = 32,
                 z_dim: int | None = None, num_classes: int = 0, scale: float = 1.0, activation: str = "silu",
                 fourier_features: int = 0, fourier_scale: float = 1.0,
                 input_shape: Sequence[int] | None = None) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"generator.scale must be > 0, got {scale}")
        self.scale = float(scale)
        input_shape = data_shape if input_shape is None else input_shape
        if len(data_shape) != 1 or len(input_shape) != 1:
            raise ValueError(f"toy_generator handles vector data [D]; got data_shape {tuple(data_shape)}, "
                             f"input_shape {tuple(input_shape)}")
        dim, in_dim = int(data_shape[0]), int(input_shape[0])
        self.z_dim = dim if z_dim is None else int(z_dim)
        if self.z_dim < 0:
            raise ValueError(f"generator.z_dim must be >= 0 (0: no latent), got {z_dim}")
        self.features = _TimeLabelFeatures(time_dim, num_classes)
        self.fourier = _Fourier(in_dim, fourier_features, fourier_scale) if fourier_features else None
        groups = [in_dim, time_dim] + ([self.z_dim] if self.z_dim else []) + (
            [2 * fourier_features] if self.fourier else [])
        self.trunk = _Trunk(groups, width, depth, activation)
        self.out = nn.Linear(width, dim)
        self.skip = nn.Linear(dim + in_dim, dim)

    def forward(self, x_t: Tensor, t: Tensor, z: Tensor, labels: Tensor | None = None) -> Tensor:
        x_t = x_t / self.scale
        inputs = [x_t, self.features(t, labels)] + ([z] if self.z_dim else []) + (
            [self.fourier(x_t)] if self.fourier else [])
        h = self.trunk(*inputs)
        return self.skip(torch.cat([self.out(h), x_t], dim=1)) * self.scale


class ToyDiscriminator(nn.Module):
    """logits = D(x_prev, t, x_t): [B, D] -> [B]; optional heads ``regression`` and ``denoised`` ([B, D]).

    ``pairwise=False`` makes the marginal discriminator of SIDDM: x_t is never read.
    """

    HEADS = ("regression", "denoised")

    def __init__(self, data_shape: Sequence[int], width: int = 128, depth: int = 3, time_dim: int = 32,
                 pairwise: bool = True, heads: Sequence[str] = (), num_classes: int = 0,
                 scale: float = 1.0, activation: str = "silu", fourier_features: int = 0,
                 fourier_scale: float = 1.0) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"discriminator.scale must be > 0, got {scale}")
        self.scale = float(scale)
        if len(data_shape) != 1:
            raise ValueError(f"toy_discriminator handles vector data [D]; got data_shape {tuple(data_shape)}")
        dim = int(data_shape[0])
        self.pairwise = bool(pairwise)
        self.features = _TimeLabelFeatures(time_dim, num_classes)
        self.fourier = _Fourier(dim, fourier_features, fourier_scale) if fourier_features else None
        points = 2 if self.pairwise else 1
        groups = [dim, time_dim] + [dim] * (points - 1) + [2 * fourier_features] * (points if self.fourier else 0)
        self.trunk = _Trunk(groups, width, depth, activation)
        unknown = set(heads) - set(self.HEADS)
        if unknown:
            raise ValueError(f"discriminator.heads: unknown head(s) {sorted(unknown)}; toy_discriminator offers "
                             f"{list(self.HEADS)}")
        self.heads = frozenset(heads)
        self.logit = nn.Linear(width, 1)
        self.outputs = nn.ModuleDict({name: nn.Linear(width, dim) for name in sorted(self.heads)})

    def forward(self, x_prev: Tensor, t: Tensor, x_t: Tensor | None = None, labels: Tensor | None = None,
                heads: Sequence[str] = ()) -> Tensor | dict[str, Tensor]:
        inputs = [x_prev / self.scale, self.features(t, labels)]
        if self.pairwise:
            if x_t is None:
                raise ValueError("this discriminator judges pairs (pairwise=True): pass x_t")
            inputs.append(x_t / self.scale)
        if self.fourier is not None:
            inputs += [self.fourier(inputs[0])] + ([self.fourier(inputs[2])] if self.pairwise else [])
        h = self.trunk(*inputs)
        logits = self.logit(h).squeeze(1)
        if not heads:
            return logits
        unknown = set(heads) - self.heads
        if unknown:
            raise ValueError(f"unknown discriminator heads {sorted(unknown)}; this network offers {sorted(self.heads)}")
        out = {"logits": logits}
        for name in heads:
            out[name] = self.outputs[name](h) * self.scale
        return out
