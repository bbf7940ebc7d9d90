"""WaveDiff speed: sampling and training of a wavelet-space recipe against its plain recipe, side by side.

    python benchmarks/variants_speed.py [--repeats 5] [--threads 2] [--out benchmarks/results/variants_speed.md]

Pairs (plain -> wavelet): cifar10_ddgan -> cifar10_wavediff (and with ``generator.type=wavelet_ncsnpp``), at batch 8;
digits_ddgan -> digits_wavediff at batch 64. Every recipe is built by ``gdiff.build.build`` (freshly initialised
networks; a missing image data set stands in by its shape) in ONE process; every repeat times each configuration
of a pair in turn (interleaved, so the load of the shared machine hits all alike) and the table gives medians and
the plain/wavelet ratio of the medians. Cases:

* ``sample``: the NFE-T reverse chain (``gdiff.sampling.sample``) from x_T, then back to images by the data's map
  (the inverse Haar transform for wavelet recipes);
* ``train``: one training iteration on a step without R1: uint8 images to model space by the data's map (the Haar
  transform for wavelet recipes), D loss backward and Adam step, G loss backward (D frozen) and Adam step.

FLOPs per call come from ``torch.utils.flop_counter.FlopCounterMode`` (matmul, conv, attention, backward
included; the Haar transform's einsum counts too).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from gdiff import recipes
from gdiff.build import Built, build
from gdiff.data.maps import DataMap
from gdiff.data.source import DataSource
from gdiff.data.transformed import transformed
from gdiff.sampling import sample

ROOT = Path(__file__).resolve().parents[1]
PAIRS = [  # (label, image shape, batch, [(name, recipe, overrides)])
    ("CIFAR-10", (3, 32, 32), 8, [("cifar10_ddgan", "cifar10_ddgan", []),
                                  ("cifar10_wavediff", "cifar10_wavediff", []),
                                  ("cifar10_wavediff, wavelet_ncsnpp", "cifar10_wavediff",
                                   ["generator.type=wavelet_ncsnpp"])]),
    ("digits", (1, 8, 8), 64, [("digits_ddgan", "digits_ddgan", []),
                               ("digits_wavediff", "digits_wavediff", [])]),
]


def data_map(built: Built, image_shape: tuple[int, ...]) -> DataMap:
    """The recipe's raw <-> model-space map; for a data set standing in by its shape, the map of uint8 images of
    ``image_shape`` through the recipe's ``data.transform``."""
    if built.data is not None:
        return built.data.data_map
    stand_in = DataSource()
    stand_in.data_shape = image_shape
    transform = built.recipe.data.get("transform")
    return (stand_in if transform is None else transformed(stand_in, transform)).data_map


class Config:
    """Networks, objective, optimisers and inputs of one recipe at one batch size."""

    def __init__(self, recipe_name: str, overrides: list[str], image_shape: tuple[int, ...], batch: int) -> None:
        torch.manual_seed(0)
        built = build(recipes.load(ROOT / "recipes" / f"{recipe_name}.yaml", overrides), stand_in_data=True)
        self.G, self.D, self.objective, self.schedule = (built.generator, built.discriminator, built.objective,
                                                         built.schedule)
        self.map = data_map(built, image_shape)
        o = built.recipe.optim
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=o.lr_g, betas=o.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=o.lr_d, betas=o.betas)
        pixels = self.map.config().get("inner", self.map.config())["max_value"]  # raw range: 0..255, digits 0..16
        self.images = torch.randint(0, int(pixels) + 1, (batch, *image_shape), dtype=torch.uint8)
        self.x_T = torch.randn(batch, *built.data_shape)
        self.params = sum(p.numel() for p in self.G.parameters()), sum(p.numel() for p in self.D.parameters())

    def sample(self) -> torch.Tensor:
        x = sample(self.G, self.schedule, self.x_T, generator=torch.Generator().manual_seed(0))
        return self.map.to_data(x)

    def train(self) -> None:
        x0 = self.map.to_model(self.images)
        self.opt_d.zero_grad(set_to_none=True)
        self.objective.discriminator_loss(self.G, self.D, self.schedule, x0, step=1).total.backward()
        self.opt_d.step()
        self.D.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        self.objective.generator_loss(self.G, self.D, self.schedule, x0, step=1).total.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)


def flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "variants_speed.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for label, image_shape, batch, members in PAIRS:
        configs = [(name, Config(recipe, overrides, image_shape, batch)) for name, recipe, overrides in members]
        counts = {name: (flops(cfg.sample), flops(cfg.train)) for name, cfg in configs}
        times = {name: ([], []) for name, _ in configs}
        for _name, cfg in configs:  # warm-up
            cfg.sample(), cfg.train()
        for _ in range(args.repeats):
            for name, cfg in configs:
                times[name][0].append(timed(cfg.sample))
                times[name][1].append(timed(cfg.train))
        base = configs[0][0]
        for name, cfg in configs:
            s, t = (statistics.median(v) for v in times[name])
            s0, t0 = (statistics.median(v) for v in times[base])
            rows.append(f"| {label} | {name} | {cfg.params[0] / 1e6:.2f} M / {cfg.params[1] / 1e6:.2f} M | {batch} | "
                        f"{cfg.schedule.num_steps} | {s:.3f} | {counts[name][0] / batch / 1e9:.3f} | {s0 / s:.2f} | "
                        f"{t:.3f} | {counts[name][1] / batch / 1e9:.3f} | {t0 / t:.2f} |")
            print(rows[-1], flush=True)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    text = "\n".join([
        "# WaveDiff speed against the plain recipes (this CPU)", "",
        f"`python benchmarks/variants_speed.py --repeats {args.repeats} --threads {args.threads}` "
        f"({datetime.datetime.now().isoformat(timespec='minutes')}; {platform.machine()}, {os.cpu_count()} cores "
        f"shared with other jobs, load average {load} at the end; torch {torch.__version__}).", "",
        "Medians of the interleaved repeats; `x plain` = plain median / this median (higher is faster); GFLOP per "
        "image from torch.utils.flop_counter (sampling: all NFE steps and the inverse transform; training: one "
        "iteration without R1, forward and backward of both networks).", "",
        "| data | recipe | G / D parameters | batch | NFE | sample s | sample GFLOP/img | sample x plain | "
        "train s | train GFLOP/img | train x plain |",
        "|---|---|---|---|---|---|---|---|---|---|---|", *rows, ""])
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
