"""Trainer overhead: what the loop adds to a CIFAR-10 DDGAN iteration (data stream, EMA, learning rates, logging).

    python benchmarks/trainer_overhead.py [--batch 16] [--iters 6] [--workers 2]

Writes a stand-in CIFAR-10 in the official python-batch layout (random pixels) to a temporary directory, builds
the Trainer of ``recipes/cifar10_ddgan.yaml`` on it (the real networks: 48.4 M / 12.7 M parameters, lazy R1
every 15 steps), and times, per iteration, the Trainer's own chores against the whole iteration:

    data    next(stream): DataLoader batch -> device -> model space -> flips
    ema     the EMA update of the generator
    step    the objective's D step and G step with their optimiser updates (what any loop must do)

The loss parts stay on the device (the meter) and are read only at log steps, so logging costs nothing per step.
Prints a JSON line with the median times and the overhead share (data + ema) / (data + ema + step).
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gdiff import recipes
from gdiff.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def write_standin_cifar10(root: Path, per_batch: int = 1000) -> None:
    """Five training batches and a test batch of random 32x32 RGB images, in CIFAR-10's pickle format."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, per_batch).tolist()}
        with (root / name).open("wb") as f:
            pickle.dump(batch, f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--iters", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_standin_cifar10(Path(tmp) / "cifar10")
        recipe = recipes.load(ROOT / "recipes" / "cifar10_ddgan.yaml", [
            f"data.root={tmp}/cifar10", f"train.batch_size={args.batch}", "train.micro_batch=0",
            f"train.num_workers={args.workers}", "train.trackers=[]", "train.mixed_precision=no",
            "train.channels_last=false", "train.compile=no"])
        trainer = Trainer(recipe, Path(tmp) / "run")
        times: dict[str, list[float]] = {"data": [], "ema": [], "step": []}
        update_ema = trainer.ema.update
        for i in range(args.iters + 1):
            t0 = time.perf_counter()
            batch = next(trainer.stream)
            t1 = time.perf_counter()
            ema_seconds = []

            def timed_ema(*a, _update=update_ema, _out=ema_seconds, **kw):
                start = time.perf_counter()
                _update(*a, **kw)
                _out.append(time.perf_counter() - start)

            trainer.ema.update = timed_ema
            trainer.train_step(*batch)
            t2 = time.perf_counter()
            trainer.step += 1
            if i:  # the first iteration warms up workers and allocators
                times["data"].append(t1 - t0)
                times["ema"].append(ema_seconds[0])
                times["step"].append(t2 - t1 - ema_seconds[0])
    med = {k: statistics.median(v) for k, v in times.items()}
    overhead = (med["data"] + med["ema"]) / sum(med.values())
    print(json.dumps({"batch": args.batch, "iters": args.iters, "workers": args.workers, "threads":
                      torch.get_num_threads(), **{f"{k}_s": round(v, 4) for k, v in med.items()},
                      "overhead_share": round(overhead, 4)}))


if __name__ == "__main__":
    main()
