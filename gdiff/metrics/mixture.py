"""Metrics for samples of a known Gaussian mixture (the 25-Gaussians).

* Frechet distance between Gaussian fits of the raw real and generated points (SIDDM's Table 1 measure):
  ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r^{1/2} S_g S_r^{1/2})^{1/2}).
* A sample is high quality when it lies within ``radius`` = 3 std (Euclidean) of its nearest mode centre.
* A mode is covered when at least ``min_fraction`` of its fair share (N / modes) of samples are high-quality
  samples assigned to it.
* KL(mode histogram of the high-quality samples || uniform over the modes).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((a + a.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def frechet_distance(real: Tensor | np.ndarray, fake: Tensor | np.ndarray) -> float:
    """Frechet distance between N(mean, cov) fits of two point clouds [N, D] (float64 arithmetic)."""
    r = np.asarray(real, dtype=np.float64)
    f = np.asarray(fake, dtype=np.float64)
    if r.ndim != 2 or f.ndim != 2 or r.shape[1] != f.shape[1]:
        raise ValueError(f"frechet_distance expects [N, D] and [M, D] arrays, got {r.shape} and {f.shape}")
    mu_r, mu_f = r.mean(0), f.mean(0)
    cov_r = np.atleast_2d(np.cov(r, rowvar=False))
    cov_f = np.atleast_2d(np.cov(f, rowvar=False))
    root_r = _sqrtm_psd(cov_r)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_r @ cov_f @ root_r), 0, None)).sum()
    return float(((mu_r - mu_f) ** 2).sum() + np.trace(cov_r) + np.trace(cov_f) - 2 * cross)


def mode_statistics(samples: Tensor, centres: Tensor, std: float, num_std: float = 3.0,
                    min_fraction: float = 0.1) -> dict[str, float]:
    """Modes covered, share of high-quality samples and KL(mode histogram || uniform); see module doc."""
    samples = torch.as_tensor(samples, dtype=torch.float64)
    centres = torch.as_tensor(centres, dtype=torch.float64)
    if samples.ndim != 2 or samples.shape[1] != centres.shape[1]:
        raise ValueError(f"samples must be [N, {centres.shape[1]}], got {tuple(samples.shape)}")
    dist, nearest = torch.cdist(samples, centres).min(dim=1)
    good = dist <= num_std * std
    counts = torch.bincount(nearest[good], minlength=len(centres)).double()
    fair_share = samples.shape[0] / len(centres)
    hist = counts / counts.sum().clamp(min=1)
    nonzero = hist > 0
    kl = float((hist[nonzero] * torch.log(hist[nonzero] * len(centres))).sum()) if good.any() else float("inf")
    return {"modes_covered": int((counts >= min_fraction * fair_share).sum()),
            "num_modes": len(centres),
            "high_quality": float(good.double().mean()),
            "kl_modes_uniform": kl}


def mixture_metrics(samples: Tensor, real: Tensor, centres: Tensor, std: float) -> dict[str, float]:
    """All metrics above for data-space samples [N, D] against the real points [M, D]."""
    return {"frechet": frechet_distance(real, samples), **mode_statistics(samples, centres, std)}
