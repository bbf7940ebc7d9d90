"""The names of the evaluation metrics and of the results they give: torch-free, so that recipes are checked
before torch loads. ``gdiff.recipes`` (``eval.metrics``, ``eval.best``) and ``gdiff.eval`` read them here.

    image metrics (``eval.metrics``)  -> result keys (what ``eval.best`` can name)
    2-D mixtures                       -> always MIXTURE_METRICS (gdiff/metrics/mixture.py)
"""

from __future__ import annotations

METRIC_RESULTS: dict[str, tuple[str, ...]] = {
    "fid": ("fid",),
    "isc": ("isc_mean", "isc_std"),
    "kid": ("kid_mean", "kid_std"),
    "prc": ("precision", "recall", "f_score"),
    "modes": ("modes_covered", "num_modes", "kl_modes_uniform"),
}
IMAGE_METRICS: tuple[str, ...] = tuple(METRIC_RESULTS)
MIXTURE_METRICS: tuple[str, ...] = ("frechet", "modes_covered", "num_modes", "high_quality", "kl_modes_uniform")
DIGIT_FEATURES = "digits"  # eval.feature_extractor value for gdiff's digit classifier (gdiff/eval/digit_classifier.py)
