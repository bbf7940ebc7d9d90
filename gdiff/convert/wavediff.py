"""WaveDiff (VinAIResearch/WaveDiff), CIFAR-10 setting (``--net_type normal``): NCSN++ on Haar subbands.

The reference transforms images in [-1, 1] with ``pytorch_wavelets.DWTForward(J=1, wave='haar')`` and trains on
``cat(LL, H_0, H_1, H_2) / 2`` (3 channels each), then samples back with ``iwt(2 x)`` and a clamp to [-1, 1]. The
subbands are the orthonormal Haar ones of gdiff/wavelet.py with the same signs, and ``/ 2`` is gdiff's
``data.transform: haar`` scale 0.5, but the two detail bands come in the other order: the reference's
``H_0`` is gdiff's HL (differences along the height) and ``H_1`` is LH. The conversion swaps those channel groups
in the network's input and output layers (a fixture made with pytorch_wavelets checks the correspondence).
Generators of ``--net_type wavelet`` (STL-10, CelebA-HQ, LSUN) are a different network and are not converted.
"""

from __future__ import annotations

from gdiff.convert.family import PIXELS, Family


def model_shape(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    channels, height, width = shape
    return 4 * channels, height // 2, width // 2


def channel_order(channels: int) -> list[int]:
    """gdiff subband channel c -> reference channel: groups [LL, LH, HL, HH] <- [LL, H_1, H_0, H_2]."""
    group = channels // 4
    return [g * group + c for g in (0, 2, 1, 3) for c in range(group)]


FAMILY = Family(name="wavediff", transform="haar", model_shape=model_shape,
                data_map={"type": "haar", "scale": 0.5, "inner": PIXELS}, channel_order=channel_order)
