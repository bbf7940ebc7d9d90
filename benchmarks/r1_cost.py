"""What an R1 step costs: a plain D+G iteration against an R1 iteration on the full batch and on a sub-batch.

CIFAR-10 DDGAN networks (``recipes/cifar10_ddgan.yaml``, built by ``gdiff.build.build``), one process, the cases
interleaved in every repeat (so a burst of load on the shared machine hits them all alike); medians of the repeats.
One iteration is what the Trainer does: D step (zero grads, ``objective.discriminator_loss`` backward, Adam) then
G step (D frozen, ``objective.generator_loss`` backward, Adam). Cases:

* ``plain``: a step where lazy R1 is off;
* ``r1 full``: an R1 step with ``r1_batch_fraction: 1`` (the real pass itself is differentiated twice);
* ``r1 f``: an R1 step with ``r1_batch_fraction: f`` (a separate D pass on ceil(f B) samples, rounded up to
  whole minibatch-stddev groups of 4, is differentiated twice).

FLOPs of one iteration are counted with ``torch.utils.flop_counter`` (matmul, conv; backward included).

    python benchmarks/r1_cost.py --batch 16 --fractions 0.25 0.5 --repeats 5 --out benchmarks/results/r1_cost.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from speed import GlobalFlopCounter  # benchmarks/speed.py: a FLOP counter that lets autograd.grad run

from gdiff import objectives, recipes
from gdiff.build import Built, build

ROOT = Path(__file__).resolve().parents[1]


def build_recipe(batch: int) -> tuple[Built, torch.Tensor]:
    """The recipe's parts (the CIFAR-10 data standing in by its shape) and a batch of model-space inputs."""
    torch.manual_seed(0)
    built = build(recipes.load(ROOT / "recipes" / "cifar10_ddgan.yaml"), stand_in_data=True)
    x0 = torch.rand(batch, *built.data_shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return built, x0


def iteration(G, D, schedule, objective: objectives.Objective, x0: torch.Tensor,
              step: int) -> Callable[[], tuple[float, float]]:
    """One training iteration at ``step``; returns (seconds of the D step, seconds of the whole iteration)."""
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-6, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-6, betas=(0.5, 0.9))

    def run() -> tuple[float, float]:
        start = time.perf_counter()
        opt_d.zero_grad(set_to_none=True)
        objective.discriminator_loss(G, D, schedule, x0, step=step).total.backward()
        opt_d.step()
        d_done = time.perf_counter()
        D.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        objective.generator_loss(G, D, schedule, x0, step=step).total.backward()
        opt_g.step()
        D.requires_grad_(True)
        end = time.perf_counter()
        return d_done - start, end - start
    return run


def measure(batch: int, fractions: list[float], repeats: int) -> list[dict]:
    built, x0 = build_recipe(batch)
    G, D, schedule = built.generator, built.discriminator, built.schedule
    cases = {"plain": (built.objective, 1), "r1 full": (built.objective, 0)}
    for f in fractions:
        cases[f"r1 {f:g}"] = (objectives.from_config({**built.recipe.objective, "r1_batch_fraction": f}), 0)
    runs, rows = {}, {}
    for name, (objective, step) in cases.items():
        runs[name] = iteration(G, D, schedule, objective, x0, step)
        with GlobalFlopCounter() as counter:  # also the warm-up
            runs[name]()
        sub = objective.grad_batch_size(D, batch) if objective.double_backward(step) else 0
        rows[name] = dict(case=name, batch=batch, r1_batch=sub, gflop=counter.get_total_flops() / 1e9,
                          d_times=[], times=[])
    for _ in range(repeats):
        for name, run in runs.items():
            d_s, s = run()
            rows[name]["d_times"].append(d_s)
            rows[name]["times"].append(s)
    plain = statistics.median(rows["plain"]["times"])
    plain_d = statistics.median(rows["plain"]["d_times"])
    for row in rows.values():
        row.update(d_s=statistics.median(row["d_times"]), s=statistics.median(row["times"]))
        row.update(vs_plain=row["s"] / plain, d_vs_plain=row["d_s"] / plain_d)
    return list(rows.values())


def markdown(rows: list[dict], command: str, threads: int) -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    lines = [
        f"## `{command}`", "",
        f"{os.cpu_count()} CPU cores ({model}), shared with other jobs (load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end); torch {torch.__version__}, "
        f"{threads} torch thread(s); {datetime.datetime.now().isoformat(timespec='minutes')}.", "",
        "| case | batch | R1 batch | D step s | D step vs plain | iteration s | iteration vs plain "
        "| iteration range s | GFLOP per iteration |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['case']} | {r['batch']} | {r['r1_batch'] or '-'} | {r['d_s']:.2f} | {r['d_vs_plain']:.2f} "
                     f"| {r['s']:.2f} | {r['vs_plain']:.2f} | {min(r['times']):.2f}-{max(r['times']):.2f} "
                     f"| {r['gflop']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="append a markdown section to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = measure(args.batch, args.fractions, args.repeats)
    for row in rows:
        print(json.dumps(row), flush=True)
    command = "python " + " ".join([Path(__file__).relative_to(ROOT).as_posix(), *sys.argv[1:]])
    report = markdown(rows, command, args.threads)
    print(report)
    if args.out:
        head = "" if args.out.exists() else "# The cost of an R1 step (written by benchmarks/r1_cost.py)\n\n"
        with args.out.open("a") as f:
            f.write(head + report + "\n")


if __name__ == "__main__":
    main()
