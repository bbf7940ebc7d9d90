"""Variants benchmark: train each variant recipe (and its baseline) as shipped, score its samples at each NFE.

    python benchmarks/variants.py mog25  [--seeds 0] [--jobs 2] [--only NAME ...]
    python benchmarks/variants.py digits [--seeds 0] [--jobs 2] [--steps 1500] [--num 5000]

Every run goes through the gdiff API (``Trainer(recipe, run_dir).train()``) with ``train.seed`` and one torch
thread per job; the run directory (``--runs``, default ``runs/bench_variants``, git-ignored) keeps a
``variant.json`` with the scores, so an interrupted benchmark resumes where it stopped. Scores of the EMA
generator at every NFE in the variant's list (continuous-time schedules may sample with fewer steps than T):

* mog25: gdiff.metrics.mixture (Frechet distance of Gaussian fits, modes covered, high-quality share) over
  10,000 samples;
* digits: the scikit-learn SVM of benchmarks/digits.py (independent of gdiff): classes seen, total variation
  between the predicted-class histogram and the real one, share classified with probability > 0.9.

Writes ``benchmarks/results/variants_<data>.jsonl`` (one record per run) and regenerates
``benchmarks/results/variants.md`` from every record there.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import redirect_stderr, redirect_stdout
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# data -> list of (name, recipe, overrides, NFEs to score)
VARIANTS: dict[str, list[tuple[str, str, list[str], list[int]]]] = {
    "mog25": [
        ("SIDDM (x0, posterior) T=2", "mog25_siddm", [], [2]),
        ("SIDDM x_prev T=2", "mog25_siddm_x_prev", [], [2]),
        ("SIDDM no z T=2", "mog25_siddm_no_z", [], [2]),
        ("SIDDM eps, vp T=2", "mog25_siddm_eps", [], [2]),
        ("SIDDM x0, vp T=2 (control of eps)", "mog25_siddm_eps", ["generator.parameterization=x0"], [2]),
        ("SIDDM x0-space D T=2", "mog25_siddm_x0_disc", [], [2]),
        ("UFOGen T=4", "mog25_ufogen", [], [1, 2, 4]),
        ("UFOGen T=4, unweighted x0 loss", "mog25_ufogen", ["objective.weighting=none"], [1, 2, 4]),
        ("UFOGen T=2", "mog25_ufogen", ["diffusion.num_steps=2"], [1, 2]),
        ("SIDDM T=4", "mog25_siddm", ["diffusion.num_steps=4"], [1, 2, 4]),
        ("SIDDM T=1", "mog25_siddm", ["diffusion.num_steps=1"], [1]),
        ("DDGAN T=2", "mog25_ddgan", [], [2]),
        ("DDGAN T=1", "mog25_ddgan", ["diffusion.num_steps=1"], [1]),
    ],
    "digits": [
        ("DDGAN (x0, posterior) T=4", "digits_ddgan", [], [4]),
        ("DDGAN x_prev T=4", "digits_ddgan_x_prev", [], [4]),
        ("DDGAN no z T=4", "digits_ddgan_no_z", [], [4]),
        ("DDGAN eps, vp T=4", "digits_ddgan_eps", [], [4]),
        ("DDGAN x0, vp T=4 (control of eps)", "digits_ddgan_eps",
         ["generator.parameterization=x0", "generator.tanh_output=true"], [4]),
        ("WaveDiff (Haar subbands) T=4", "digits_wavediff", [], [4]),
        ("UFOGen T=4", "digits_ufogen", [], [1, 2, 4]),
        ("SIDDM T=2", "digits_siddm", ["diffusion.num_steps=2"], [1, 2]),
        ("SIDDM T=1", "digits_siddm", ["diffusion.num_steps=1"], [1]),
        ("DDGAN T=1", "digits_ddgan", ["diffusion.num_steps=1"], [1]),
    ],
}


def _digits_benchmark():
    spec = importlib.util.spec_from_file_location("digits_benchmark", ROOT / "benchmarks" / "digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _digits_scorer():
    module = _digits_benchmark()
    svm, _, _ = module.classifier()
    return lambda samples: module.score(samples.numpy(), svm)


def run_one(data: str, name: str, recipe_name: str, overrides: list[str], nfes: list[int], seed: int,
            steps: int | None, num: int, run_dir: str) -> dict:
    """Train one variant in this worker process (unless finished) and score it; returns its record."""
    import torch

    from gdiff import recipes
    from gdiff.metrics.mixture import mixture_metrics
    from gdiff.trainer import Trainer

    path = Path(run_dir)
    done = path / "variant.json"
    if done.is_file():
        return json.loads(done.read_text())
    overrides = [*overrides, f"train.seed={seed}", "train.threads=1"] + ([f"train.max_steps={steps}"] if steps else [])
    recipe = recipes.load(ROOT / "recipes" / f"{recipe_name}.yaml", overrides)
    path.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    start = time.perf_counter()
    with (path / "train.log").open("a") as log, redirect_stdout(log), redirect_stderr(log):
        trainer = Trainer(recipe, path)
        trainer.train()
    wall = time.perf_counter() - start
    score = _digits_scorer() if data == "digits" else None
    scores = {}
    for nfe in nfes:
        samples = trainer.sample(num, steps=nfe, seed=seed)
        if score is not None:
            scores[nfe] = score(samples)
        else:
            src = trainer.data
            scores[nfe] = mixture_metrics(samples, src.points, src.centres, src.mode_std)
    command = " ".join([f"python -m gdiff.train recipes/{recipe_name}.yaml", *overrides])
    record = {"data": data, "name": name, "recipe": recipe_name, "overrides": overrides, "seed": seed,
              "max_steps": recipe.train.max_steps, "batch_size": recipe.train.batch_size, "num_samples": num,
              "train_wall_s": wall, "scores": {str(k): v for k, v in scores.items()}, "command": command,
              "date": datetime.date.today().isoformat(), "torch": torch.__version__,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)"}
    done.write_text(json.dumps(record, indent=1) + "\n")
    return record


def _fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def write_markdown() -> None:
    """benchmarks/results/variants.md from every record of variants_*.jsonl."""
    lines = ["# Variants: measured results", "",
             "Written by `benchmarks/variants.py` (commands per row; budgets as stated). CPU runs on a shared 2-core",
             "machine, one torch thread per run; wall times are indicative only (other jobs shared the cores).", ""]
    for data in ("mog25", "digits"):
        path = RESULTS / f"variants_{data}.jsonl"
        if not path.is_file():
            continue
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        order = {name: i for i, (name, *_) in enumerate(VARIANTS[data])}
        records.sort(key=lambda r: (order.get(r["name"], 99), r["seed"]))
        if data == "mog25":
            lines += ["## 25-Gaussians (10,000 samples; Frechet distance of Gaussian fits, lower is better)", "",
                      "| variant | seed | steps x batch | NFE | Frechet | modes /25 | high-quality | train min "
                      "| command |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for r in records:
                for nfe, s in r["scores"].items():
                    lines.append(f"| {r['name']} | {r['seed']} | {r['max_steps']} x {r['batch_size']} | {nfe} | "
                                 f"{_fmt(s['frechet'])} | {s['modes_covered']} | {_fmt(s['high_quality'], 3)} | "
                                 f"{r['train_wall_s'] / 60:.1f} | `{r['command']}` |")
        else:
            lines += ["## Digits (scikit-learn 8x8; scored by benchmarks/digits.py's SVM)", "",
                      "classes: digit classes among the samples; TV: total variation between the predicted-class "
                      "histogram and the real one (lower is better); confident: share classified with p > 0.9 "
                      "(held-out real digits: {:.3f}; the SVM's 5-fold accuracy {:.3f}).".format(
                          *_digits_benchmark().classifier()[:0:-1]), "",
                      "| variant | seed | steps x batch | NFE | classes | TV | confident | train min | command |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for r in records:
                for nfe, s in r["scores"].items():
                    lines.append(f"| {r['name']} | {r['seed']} | {r['max_steps']} x {r['batch_size']} | {nfe} | "
                                 f"{s['classes']} | {_fmt(s['tv_classes'], 3)} | {_fmt(s['confident'], 3)} | "
                                 f"{r['train_wall_s'] / 60:.1f} | `{r['command']}` |")
        lines.append("")
    (RESULTS / "variants.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", choices=sorted(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="train.max_steps for every run (default: recipe's)")
    parser.add_argument("--num", type=int, default=None, help="samples scored (mog25 10,000, digits 5,000)")
    parser.add_argument("--only", nargs="+", default=None, help="variant names to run (default: all)")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench_variants")
    args = parser.parse_args()
    num = args.num or (10_000 if args.data == "mog25" else 5_000)
    todo = [(name, recipe, overrides, nfes, seed) for name, recipe, overrides, nfes in VARIANTS[args.data]
            for seed in args.seeds if args.only is None or name in args.only]
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"variants_{args.data}.jsonl"
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        futures = {}
        for name, recipe, overrides, nfes, seed in todo:
            tag = "_".join([recipe, *[o.replace("=", "-").replace(".", "-") for o in overrides], f"s{seed}"])
            run_dir = args.runs / args.data / f"{tag}_{args.steps or 'recipe'}"
            futures[pool.submit(run_one, args.data, name, recipe, overrides, nfes, seed, args.steps, num,
                                str(run_dir))] = name
        for future in as_completed(futures):
            record = future.result()
            print(json.dumps({"name": record["name"], "seed": record["seed"], "scores": record["scores"]}),
                  flush=True)
            known = [json.loads(line) for line in out.read_text().splitlines()] if out.is_file() else []
            known = [r for r in known if (r["name"], r["seed"], r["max_steps"]) !=
                     (record["name"], record["seed"], record["max_steps"])]
            out.write_text("".join(json.dumps(r) + "\n" for r in [*known, record]))
            write_markdown()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
