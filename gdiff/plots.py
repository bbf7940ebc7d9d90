"""Pictures of samples (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from torch import Tensor  # noqa: E402


def scatter_samples(real: Tensor, fake: Tensor, path: str | Path, title: str = "", max_points: int = 10_000) -> None:
    """Scatter plot of 2-D generated points over the real ones, saved as PNG."""
    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    ax.scatter(real[:max_points, 0], real[:max_points, 1], s=1, c="0.75", label="data")
    ax.scatter(fake[:max_points, 0], fake[:max_points, 1], s=1, c="tab:red", alpha=0.5, label="samples")
    ax.set_title(title)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", markerscale=6, fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
