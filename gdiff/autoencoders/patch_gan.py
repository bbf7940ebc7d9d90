"""The patch discriminator of gdiff's autoencoder trainer (pix2pix / LDM's NLayerDiscriminator, smaller).

    [B, C, H, W] -> conv 4x4 /2 -> LeakyReLU(0.2) -> (layers - 1) x [conv 4x4 /2, GroupNorm, LeakyReLU(0.2)]
                 -> conv 3x3 -> logits [B, 1, H / 2^layers, W / 2^layers]   (one logit per patch)

Hinge losses: D: mean relu(1 - D(x)) + mean relu(1 + D(x')); the autoencoder: -mean D(x').
"""

from __future__ import annotations

from torch import Tensor, nn


def patch_discriminator(in_channels: int, channels: int = 64, layers: int = 2) -> nn.Sequential:
    """A fully convolutional patch discriminator (see the module docstring); ``channels`` doubles per layer."""
    if layers < 1 or channels < 1:
        raise ValueError(f"loss.disc_layers and loss.disc_channels must be >= 1, got {layers} and {channels}")
    blocks: list[nn.Module] = [nn.Conv2d(in_channels, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
    width = channels
    for _ in range(layers - 1):
        blocks += [nn.Conv2d(width, 2 * width, 4, 2, 1), nn.GroupNorm(min(32, 2 * width), 2 * width),
                   nn.LeakyReLU(0.2)]
        width *= 2
    return nn.Sequential(*blocks, nn.Conv2d(width, 1, 3, 1, 1))


def hinge_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """mean relu(1 - D(x)) + mean relu(1 + D(x'))."""
    return (1 - real_logits).relu().mean() + (1 + fake_logits).relu().mean()
