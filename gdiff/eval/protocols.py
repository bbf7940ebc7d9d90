"""Evaluation protocols: how generated images reach the feature extractor, and the sample/reference sets.

``gdiff`` (the default): samples are quantised losslessly, ``uint8 = round((x + 1) * 127.5)``
(gdiff/eval/fidelity.py), and compared with the recipe's data set.

``ddgan``: the DDGAN and WaveDiff papers' numbers. Their ``test_*.py --compute_fid`` writes every sample with
``torchvision.utils.save_image(x, 'N.jpg')``, i.e. ``uint8 = floor(255 x01 + 0.5)`` clamped (x01 = (x + 1) / 2),
saved by PIL as a JPEG at PIL's default quality 75 (4:2:0 chroma subsampling), then scores the decoded files
against statistics of the training set with pytorch-fid. This protocol reproduces the bytes: the same
quantisation and a PIL JPEG round trip at quality 75 (:func:`jpeg_round_trip`); it needs 50,000 samples and the
training split as the reference. JPEG artefacts alone move FID (Parmar et al., clean-fid, 2022), so numbers of
the two protocols are not comparable. Features still come from torch-fidelity's Inception (the FID weights
pytorch-fid also uses, with its own resizing to 299 px), so expect agreement with pytorch-fid to within a
few hundredths of FID, not bit for bit.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

JPEG_QUALITY = 75  # PIL's default, which torchvision's save_image uses for a .jpg path
PAPER_SAMPLES = 50_000


def save_image_uint8(x: Tensor) -> Tensor:
    """Data-space images x [N, C, H, W] in [-1, 1] -> uint8 as torchvision's save_image quantises them:
    ``floor(255 (x + 1) / 2 + 0.5)`` clamped to [0, 255]."""
    return ((x + 1) / 2).mul(255).add(0.5).clamp(0, 255).to(torch.uint8)


def jpeg_round_trip(images: Tensor, quality: int = JPEG_QUALITY) -> Tensor:
    """uint8 images [N, C, H, W] (C = 1 or 3) -> the pixels of PIL JPEG files written at ``quality``, same shape."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"jpeg_round_trip expects uint8 images [N, 1 or 3, H, W], got {images.dtype} "
                         f"{tuple(images.shape)}")
    out = torch.empty_like(images)
    for i, image in enumerate(images.cpu().permute(0, 2, 3, 1).numpy()):
        buffer = io.BytesIO()
        Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(buffer, format="JPEG",
                                                                                   quality=quality)
        decoded = np.array(Image.open(io.BytesIO(buffer.getvalue())))
        out[i] = torch.from_numpy(decoded.reshape(image.shape)).permute(2, 0, 1)
    return out


@dataclass(frozen=True)
class Protocol:
    """``jpeg``: samples go through :func:`save_image_uint8` and a JPEG round trip; ``num_samples`` (None: any)
    and ``reference_split`` (None: the recipe's data set as it is) are required of a run."""

    name: str
    jpeg: bool
    num_samples: int | None
    reference_split: str | None

    def check(self, num_samples: int, split: str) -> None:
        """ValueError naming the option when the run does not follow the protocol (called before sampling)."""
        if self.num_samples is not None and num_samples != self.num_samples:
            raise ValueError(f"--protocol {self.name} scores {self.num_samples:,} samples; got --num {num_samples}")
        if self.reference_split is not None and split != self.reference_split:
            raise ValueError(f"--protocol {self.name} compares with the {self.reference_split} split; the recipe's "
                             f"data section reads the {split} split")

    def prepare(self, samples: Tensor) -> Tensor:
        """Data-space images [N, C, H, W] in [-1, 1] -> the data-space images the metrics should see. For a JPEG
        protocol these are ``u / 127.5 - 1`` of the decoded bytes u, which gdiff's lossless quantisation maps
        back to u exactly."""
        if not self.jpeg:
            return samples
        return jpeg_round_trip(save_image_uint8(samples)).float() / 127.5 - 1


PROTOCOLS: dict[str, Protocol] = {
    "gdiff": Protocol("gdiff", jpeg=False, num_samples=None, reference_split=None),
    "ddgan": Protocol("ddgan", jpeg=True, num_samples=PAPER_SAMPLES, reference_split="train"),
}
