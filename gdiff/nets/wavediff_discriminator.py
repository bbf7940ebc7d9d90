"""WaveDiff's CIFAR-10 discriminator: DDGAN's small time-conditioned discriminator with 3 down blocks instead of 4
(``--num_disc_layers 3`` in the authors' run script), for the 16 x 16 subbands of 32 x 32 images.

Registry type ``wavediff_small``: the keys of ``ddgan_small`` (gdiff/nets/ddgan_discriminator.py); widths in units
of ``channels`` 2 -> 2 -> 4 (down) -> 8 (down), so 16 px subbands end at 4 x 4 as 32 px images do in DDGAN.
"""

from __future__ import annotations

from gdiff.nets.ddgan_discriminator import DDGANDiscriminator


class WaveDiffSmallDiscriminator(DDGANDiscriminator):
    """logits = D(x_prev, t, x_t): [B, C, H, W] -> [B]; 3 down blocks, 2 of them halve the resolution."""

    registry_name = "wavediff_small"
    layout = ((2, False), (4, True), (8, True))
