"""25-Gaussians benchmark (SIDDM paper, Table 1): DDGAN, SIDDM and SIDDM without AFD at T in {2, 4, 8, 16}.

    python benchmarks/mog25.py [--steps 3000] [--seeds 0 1] [--num-steps 2 4 8 16] [--jobs 2] [--name mog25]

Each run trains one shipped recipe (``recipes/mog25_{ddgan,siddm,siddm_no_afd}.yaml``) with
``diffusion.num_steps`` = T, ``train.seed`` and (optionally) a reduced ``train.max_steps`` through the gdiff API,
in ``--jobs`` worker processes with one torch thread each. Run directories go to ``--runs`` (default
``runs/bench_mog25``, git-ignored); a finished run (metrics.json and timing.json present) is not trained again,
so an interrupted benchmark resumes where it stopped (runs with another ``--steps`` go to their own directories).
Writes ``NAME.md`` (Frechet distance mean +- std over seeds beside the paper's Table 1, modes covered,
high-quality share, wall time per run) and ``NAME_samples.png`` (one panel per method x T, first seed) into
``--results``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import redirect_stderr, redirect_stdout
from multiprocessing import get_context
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
METHODS = {  # label -> recipe
    "DDGAN": "recipes/mog25_ddgan.yaml",
    "SIDDM": "recipes/mog25_siddm.yaml",
    "SIDDM without AFD": "recipes/mog25_siddm_no_afd.yaml",
}
PAPER = {  # SIDDM paper, Table 1 (Frechet distance, lower is better)
    "DDGAN": {2: 7.27, 4: 0.99, 8: 0.49, 16: 0.53},
    "SIDDM": {2: 0.14, 4: 1.21, 8: 0.30, 16: 0.23},
    "SIDDM without AFD": {2: 21.19, 4: 53.22, 8: 7.04, 16: 14.37},
}
NUM_PLOT = 5000


def run_one(method: str, num_steps: int, seed: int, max_steps: int | None, run_dir: str) -> dict:
    """Train one configuration in this (worker) process; returns its metrics and timings."""
    from gdiff import recipes
    from gdiff.trainer import Trainer

    run_path = Path(run_dir)
    timing_path = run_path / "timing.json"
    if (run_path / "metrics.json").is_file() and timing_path.is_file():
        return {**json.loads((run_path / "metrics.json").read_text()), **json.loads(timing_path.read_text())}
    overrides = [f"diffusion.num_steps={num_steps}", f"train.seed={seed}", "train.threads=1"]
    if max_steps:
        overrides.append(f"train.max_steps={max_steps}")
    recipe = recipes.load(ROOT / METHODS[method], overrides)
    run_path.mkdir(parents=True, exist_ok=True)
    wall, cpu = time.perf_counter(), time.process_time()
    with (run_path / "train.log").open("w") as log, redirect_stdout(log), redirect_stderr(log):
        trainer = Trainer(recipe, run_path)  # the progress bar and metrics go to the run's train.log
        trainer.train()
    timing = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
              "max_steps": recipe.train.max_steps}
    samples = trainer.sample(NUM_PLOT, seed=seed)
    np.savez(run_path / "samples.npz", samples=samples.numpy())
    timing_path.write_text(json.dumps(timing) + "\n")
    return {**json.loads((run_path / "metrics.json").read_text()), **timing}


def _stats(values: list[float]) -> str:
    arr = np.asarray(values, dtype=float)
    return f"{arr.mean():.2f} ± {arr.std():.2f}" if len(arr) > 1 else f"{arr.mean():.2f}"


def write_markdown(results: dict, args: argparse.Namespace, elapsed: float, path: Path) -> None:
    import torch

    lines = ["# 25-Gaussians benchmark (SIDDM paper, Table 1)", "",
             f"Command: `{' '.join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])}`  ",
             f"Machine: {os.cpu_count()} CPU cores (nproc), {platform.processor() or platform.machine()}, "
             f"torch {torch.__version__}, Python {platform.python_version()}; {args.jobs} training process(es) in "
             f"parallel with 1 torch thread each.  ",
             f"Date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}; total wall time "
             f"{elapsed / 60:.1f} min.  ",
             f"Seeds: {', '.join(map(str, args.seeds))}; train.max_steps per run: "
             f"{args.steps or 'as in the recipe'}"
             f"{' (reduced from the recipes, to fit the hour)' if args.steps else ''}; 10,000 EMA samples each; "
             "metrics by `gdiff.metrics.mixture` in data space.", "",
             "Frechet distance between Gaussian fits of real and generated points (mean ± std over seeds; "
             "lower is better), beside the paper's Table 1:", ""]
    ts = args.num_steps
    lines.append("| method | " + " | ".join(f"T={t} ours | T={t} paper" for t in ts) + " |")
    lines.append("|---" * (1 + 2 * len(ts)) + "|")
    for method in METHODS:
        cells = []
        for t in ts:
            runs = [results[(method, t, s)] for s in args.seeds if (method, t, s) in results]
            cells += [_stats([r["frechet"] for r in runs]) if runs else "not run", f"{PAPER[method][t]:.2f}"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", "Modes covered (of 25; a mode counts when >= 10% of its fair share of samples lie within 3 std "
              "of its centre), share of high-quality samples (within 3 std of a centre), wall and CPU time of "
              "each run:", ""]
    lines.append("| method | T | seed | Frechet | modes | high quality | KL(modes ‖ uniform) | wall s | CPU s |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for method in METHODS:
        for t in ts:
            for s in args.seeds:
                r = results.get((method, t, s))
                if r is None:
                    lines.append(f"| {method} | {t} | {s} | not run | | | | | |")
                    continue
                lines.append(f"| {method} | {t} | {s} | {r['frechet']:.3f} | {r['modes_covered']} | "
                             f"{r['high_quality']:.3f} | {r['kl_modes_uniform']:.3f} | {r['wall_s']:.0f} | "
                             f"{r['cpu_s']:.0f} |")
    lines += ["", f"Samples (first seed, red) over the data (grey): `{args.name}_samples.png`.", ""]
    path.write_text("\n".join(lines))


def plot_grid(results: dict, args: argparse.Namespace, runs_dir: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gdiff import data

    real = data.build({"type": "mog25"}).points.numpy()  # the fixed sample in data space
    real = real[np.random.default_rng(0).permutation(len(real))[:NUM_PLOT]]
    seed = args.seeds[0]
    fig, axes = plt.subplots(len(METHODS), len(args.num_steps), squeeze=False,
                             figsize=(3 * len(args.num_steps), 3 * len(METHODS)))
    for i, method in enumerate(METHODS):
        for j, t in enumerate(args.num_steps):
            ax = axes[i, j]
            ax.scatter(real[:, 0], real[:, 1], s=0.5, c="0.7", rasterized=True)
            npz = runs_dir / _run_name(method, t, seed, args.steps) / "samples.npz"
            r = results.get((method, t, seed))
            if npz.is_file() and r is not None:
                fake = np.load(npz)["samples"]
                ax.scatter(fake[:, 0], fake[:, 1], s=0.5, c="tab:red", alpha=0.4, rasterized=True)
                ax.set_title(f"{method}, T={t}\nFD {r['frechet']:.2f}, {r['modes_covered']}/25 modes",
                             fontsize=8)
            else:
                ax.set_title(f"{method}, T={t}: not run", fontsize=8)
            ax.set_xlim(-4, 24)
            ax.set_ylim(-4, 24)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _run_name(method: str, num_steps: int, seed: int, max_steps: int | None) -> str:
    return f"{Path(METHODS[method]).stem}_T{num_steps}_s{seed}_{max_steps or 'recipe'}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="train.max_steps per run (default: the recipe's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--num-steps", type=int, nargs="+", default=[2, 4, 8, 16], help="values of T")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--jobs", type=int, default=2, help="training processes in parallel (1 thread each)")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench_mog25")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--name", default="mog25", help="results file stem: NAME.md and NAME_samples.png")
    args = parser.parse_args(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # Seed by seed, so that an interrupted benchmark has complete grids for its first seeds.
    jobs = [(m, t, s) for s in args.seeds for t in sorted(args.num_steps, reverse=True) for m in args.methods]
    results: dict = {}
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(run_one, m, t, s, args.steps, str(args.runs / _run_name(m, t, s, args.steps))):
                   (m, t, s) for m, t, s in jobs}
        for future in as_completed(futures):
            key = futures[future]
            try:
                results[key] = future.result()
            except Exception as err:  # keep the other runs; the table says "not run"
                print(f"{key} failed: {err!r}", flush=True)
                continue
            r = results[key]
            print(f"[{(time.perf_counter() - start) / 60:5.1f} min] {key}: Frechet {r['frechet']:.3f}, "
                  f"{r['modes_covered']}/25 modes, wall {r['wall_s']:.0f} s", flush=True)
            write_markdown(results, args, time.perf_counter() - start, args.results / f"{args.name}.md")
    write_markdown(results, args, time.perf_counter() - start, args.results / f"{args.name}.md")
    plot_grid(results, args, args.runs, args.results / f"{args.name}_samples.png")


if __name__ == "__main__":
    main()
