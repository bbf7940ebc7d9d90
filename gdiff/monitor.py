"""What a training run makes of its EMA generator: pictures, metrics, the best model and the exported folders.

The Trainer only loops; at its picture, evaluation and checkpoint steps it asks the :class:`EMAMonitor`, which
sees the EMA generator through the exported-generator path (gdiff/export.py) and so samples exactly as
``python -m gdiff.sample`` and ``python -m gdiff.eval`` do on the exported folder:

    RUN/samples/step_N.png      a grid of PICTURE_IMAGES images (fixed seed), or PICTURE_POINTS 2-D points
                                over a random subset of the real data
    RUN/generator/              the EMA generator (config.json + model.safetensors), at every checkpoint
    RUN/generator_best/         the best EMA generator by ``eval.best`` (with metrics_best.json beside it)

Evaluation samples ``eval.num_samples`` with ``gdiff.eval``'s seeding (seed 0, chunks of ``eval.batch_size``),
each process drawing its share of the chunks; the main process computes the metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gdiff import eval as evaluation
from gdiff.data import DataSource
from gdiff.export import ExportedGenerator, GeneratorConfig
from gdiff.recipes import EvalConfig
from gdiff.rundir import RunDir

PICTURE_IMAGES = 64  # images in each picture grid
PICTURE_POINTS = 2_000  # generated points in each scatter plot (about 80 per mode of the 25-Gaussians)
REAL_POINTS = 5_000  # real points under them: a fixed random subset of the data
EVAL_SEED = 0  # gdiff.eval's default --seed


class BestModel:
    """Tracks the best value of one metric (``mode`` min or max); :meth:`update` says whether it improved."""

    def __init__(self, metric: str, mode: str = "min", value: float | None = None) -> None:
        self.metric, self.mode, self.value = metric, mode, value

    def update(self, metrics: dict[str, float]) -> bool:
        if not self.metric or self.metric not in metrics:
            return False
        new = metrics[self.metric]
        better = self.value is None or (new < self.value if self.mode == "min" else new > self.value)
        if better:
            self.value = new
        return better


class EMAMonitor:
    """Pictures, metrics, best model and exports of the EMA generator ``ema`` (a module shared with the EMA)."""

    def __init__(self, ema: nn.Module, config: GeneratorConfig, source: DataSource, cfg: EvalConfig,
                 run_dir: RunDir, device: torch.device, rank: int = 0, world: int = 1) -> None:
        self.generator = ExportedGenerator(config, G=ema, device=device, data_map=source.data_map)
        self.source, self.cfg, self.run_dir = source, cfg, run_dir
        self.rank, self.world = rank, world
        self.best = BestModel(cfg.best, cfg.best_mode)

    def export(self) -> None:
        """RUN/generator/: the EMA generator as a self-describing folder (main process)."""
        if self.run_dir.main:
            self.generator.save_pretrained(self.run_dir.path / "generator")

    def picture(self, step: int, title: str, seed: int, trackers: Sequence[Any] = ()) -> Path | None:
        """A picture of EMA samples from fixed noise into RUN/samples/ (main process; None elsewhere), images also
        to the TensorBoard tracker among ``trackers``."""
        if not self.run_dir.main:
            return None
        points = len(self.generator.config.data_shape) == 1
        samples = self.generator.sample(PICTURE_POINTS if points else PICTURE_IMAGES, seed=seed,
                                        batch_size=self.cfg.batch_size)
        real = None
        if points and self.source.raw is not None:
            pick = torch.randperm(len(self.source.raw), generator=torch.Generator().manual_seed(0))[:REAL_POINTS]
            real = self.source.to_data(self.source.to_model(self.source.raw[pick]))
        path = self.run_dir.save_samples(samples, step, title, real)
        if path is not None and samples.ndim == 4:
            for tracker in trackers:
                if tracker.name == "tensorboard":
                    tracker.log_images({"samples": ((samples + 1) / 2).clamp(0, 1)}, step=step, dataformats="NCHW")
        return path

    def evaluate(self, step: int) -> dict[str, Any]:
        """Metrics of ``eval.num_samples`` EMA samples (on the main process; {} elsewhere). A new best by
        ``eval.best`` is exported to RUN/generator_best/ with its metrics in RUN/metrics_best.json."""
        if not evaluation.applies(self.source, self.cfg):
            return {}
        samples = evaluation.generate(self.generator, self.cfg.num_samples, seed=EVAL_SEED,
                                      batch_size=self.cfg.batch_size, rank=self.rank, world=self.world)
        if not self.run_dir.main:
            return {}
        metrics = evaluation.score(samples, self.source, self.cfg)
        if self.best.update(metrics):
            self.generator.save_pretrained(self.run_dir.path / "generator_best")
            self.run_dir.write_metrics({"step": step, **metrics}, "metrics_best.json")
        return metrics
