"""Digits benchmark: train the shipped digits recipes, then score their samples with independent code.

    python benchmarks/digits.py [--recipes digits_siddm digits_ddgan ...] [--runs /tmp/digits] [--num 26000]
                                [--override train.threads=1 ...]

Each recipe trains as shipped (``python -m gdiff.train``, wall time measured) unless its run directory already
holds a finished run; then ``--num`` samples of its EMA generator are scored by a scikit-learn SVM trained on the
real 8x8 digits (not gdiff's own classifier):

* digits: the predicted-class histogram against the real class proportions (total variation distance), the
  share of samples the SVM classifies with probability > 0.9 (real digits: the same measure on held-out data).
* stacked digits: each channel classified -> mode 100a + 10b + c; modes covered out of 1000 and
  KL(mode histogram || uniform), as DDGAN's StackedMNIST measure (26,000 samples there too).

Writes benchmarks/results/digits.md (appending one row per recipe) and a sample grid per recipe.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.svm import SVC

from gdiff.export import load_generator

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def classifier() -> tuple[CalibratedClassifierCV, float, float]:
    """An RBF SVM on the 8x8 digits (pixel counts 0..16); its 5-fold accuracy and held-out confidence share."""
    digits = load_digits()
    x, y = digits.data, digits.target
    accuracy = float(cross_val_score(SVC(gamma=0.001), x, y, cv=5).mean())
    x_tr, x_te, y_tr, _ = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    confident_real = float((calibrated().fit(x_tr, y_tr).predict_proba(x_te).max(1) > 0.9).mean())
    return calibrated().fit(x, y), accuracy, confident_real


def calibrated() -> CalibratedClassifierCV:
    """The SVM with calibrated class probabilities."""
    return CalibratedClassifierCV(SVC(gamma=0.001), ensemble=False)


def train(recipe: str, run_dir: Path, overrides: list[str]) -> float | None:
    """Train unless finished; the wall time in seconds (kept in RUN/train_seconds.txt)."""
    seconds_file = run_dir / "train_seconds.txt"
    if (run_dir / "metrics.json").is_file():
        return float(seconds_file.read_text()) if seconds_file.is_file() else None
    start = time.perf_counter()
    with (run_dir.parent / f"{run_dir.name}.log").open("w") as log:
        subprocess.run([sys.executable, "-m", "gdiff.train", str(ROOT / "recipes" / f"{recipe}.yaml"), *overrides,
                        "--run-dir", str(run_dir)], cwd=ROOT, check=True, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    seconds_file.write_text(f"{seconds:.1f}\n")
    return seconds


def draw(run_dir: Path, num: int) -> np.ndarray:
    """``num`` samples [N, C, 8, 8] in [-1, 1] of the run's exported EMA generator (RUN/generator/), seed 0."""
    return load_generator(run_dir).sample(num, seed=0, batch_size=2000).numpy()


def score(samples: np.ndarray, svm: CalibratedClassifierCV) -> dict[str, Any]:
    counts = ((samples.clip(-1, 1) + 1) * 8).reshape(samples.shape[0], samples.shape[1], 64)
    proba = np.stack([svm.predict_proba(counts[:, c]) for c in range(samples.shape[1])], 1)  # [N, C, 10]
    digit = proba.argmax(-1)
    out: dict[str, Any] = {"confident": float((proba.max(-1) > 0.9).mean())}
    if samples.shape[1] == 1:
        real = np.bincount(load_digits().target, minlength=10) / len(load_digits().target)
        fake = np.bincount(digit[:, 0], minlength=10) / len(digit)
        out.update(classes=int((fake > 0).sum()), tv_classes=float(0.5 * np.abs(real - fake).sum()),
                   min_ratio=float((fake / real).min()), max_ratio=float((fake / real).max()),
                   class_shares=[round(float(v), 3) for v in fake])
    else:
        modes = digit[:, 0] * 100 + digit[:, 1] * 10 + digit[:, 2]
        hist = np.bincount(modes, minlength=1000) / len(modes)
        nz = hist[hist > 0]
        out.update(modes=int((hist > 0).sum()), kl_uniform=float((nz * np.log(nz * 1000)).sum()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=["digits_siddm", "digits_ddgan"])
    parser.add_argument("--runs", type=Path, default=Path("/tmp/gdiff_digits"))
    parser.add_argument("--num", type=int, default=26_000)
    parser.add_argument("--override", nargs="*", default=[], help="recipe overrides, e.g. train.threads=1")
    args = parser.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)
    svm, accuracy, confident_real = classifier()
    print(f"SVM: 5-fold accuracy {accuracy:.4f}; held-out real digits classified with p > 0.9: {confident_real:.3f}")
    for recipe in args.recipes:
        run_dir = args.runs / recipe
        seconds = train(recipe, run_dir, args.override)
        samples = draw(run_dir, args.num)
        result = {"recipe": recipe, "overrides": args.override, "train_seconds": seconds,
                  "num_samples": len(samples), **score(samples, svm), "svm_accuracy": accuracy,
                  "real_confident": confident_real}
        print(json.dumps(result))
        grid = sorted((run_dir / "samples").glob("step_*.png"))[-1]
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{recipe}_samples.png").write_bytes(grid.read_bytes())
        with (RESULTS / "digits_runs.jsonl").open("a") as f:
            f.write(json.dumps({**result, "date": time.strftime("%Y-%m-%d"), "machine":
                                f"{platform.machine()}, {os.cpu_count()} cores", "torch": torch.__version__}) + "\n")


if __name__ == "__main__":
    main()
