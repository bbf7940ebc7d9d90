"""CLD against the shipped cosine process: 25-Gaussians (T = 2, 4) and digits, same networks, same budget.

    python benchmarks/cld.py [--mog-steps 2000] [--seeds 0 1 2] [--digits-steps 400] [--betas 4 1]
                             [--runs /tmp/gdiff_cld]

Each pair of runs trains the same recipe twice through ``gdiff.Trainer``, one training at a time with one torch
thread: once on the cosine process it ships with (``recipes/mog25_siddm.yaml``, ``mog25_ddgan.yaml``,
``digits_siddm.yaml``) and once on CLD (their ``*_cld.yaml`` twins: the generator's input is twice as wide, as
the state is (x, v); everything else is identical). The 25-Gaussians runs are scored by the Trainer's own
evaluation in data space (``gdiff.metrics.mixture``: Frechet distance, modes covered, high-quality share); the
digits runs by the independent SVM of ``benchmarks/digits.py`` on 10,000 samples (class shares, total variation
against the real class proportions, confident share). The first seed runs everything (SIDDM at T = 2 and 4,
DDGAN at T = 2, digits), the other seeds SIDDM at T = 2 and 4 afterwards. ``--betas``: CLD's beta (B(t) = beta t)
of the CLD runs; a beta other than the recipes' 4 adds SIDDM runs at T = 2 and 4 on the first seed. Finished runs
are not trained again, and the results file is rewritten after every run, so a run cut short by the time budget
leaves the rows finished before it.
Writes ``benchmarks/results/cld.md``.
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
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PROCESSES = ("cosine", "cld")
BETA = 4.0  # the CLD recipes' beta


def plan(args: argparse.Namespace) -> list[tuple[str, str, int, int, float]]:
    """(base recipe, process, T, seed, CLD beta) in the order they run."""
    first, rest = args.seeds[0], args.seeds[1:]
    runs = [("mog25_siddm", p, t, first, BETA) for t in (2, 4) for p in PROCESSES]
    runs += [("mog25_ddgan", p, 2, first, BETA) for p in PROCESSES]
    runs += [("digits_siddm", p, 4, first, BETA) for p in PROCESSES]
    runs += [("mog25_siddm", "cld", t, first, b) for b in args.betas if b != BETA for t in (2, 4)]
    return runs + [("mog25_siddm", p, t, s, BETA) for s in rest for t in (2, 4) for p in PROCESSES]


def run_one(base: str, process: str, T: int, seed: int, beta: float, args: argparse.Namespace) -> dict:
    from gdiff import recipes
    from gdiff.trainer import Trainer

    name = base if process == "cosine" else f"{base}_cld"
    digits = base.startswith("digits")
    steps = args.digits_steps if digits else args.mog_steps
    run = args.runs / (f"{name}_T{T}_s{seed}_{steps}" + ("" if beta == BETA else f"_beta{beta:g}"))
    done = run / "bench.json"
    if done.is_file():
        return json.loads(done.read_text())
    overrides = [f"diffusion.num_steps={T}", f"train.seed={seed}", "train.threads=1", f"train.max_steps={steps}",
                 "train.trackers=[]", "train.checkpoint_every=0"] + ([f"diffusion.beta={beta}"] if beta != BETA else [])
    if digits:
        overrides += ["train.sample_every=0"]
    recipe = recipes.load(ROOT / "recipes" / f"{name}.yaml", overrides)
    run.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with (run / "train.log").open("w") as log, redirect_stdout(log), redirect_stderr(log):
        trainer = Trainer(recipe, run)
        trainer.train()
    out = {"recipe": name, "T": T, "seed": seed, "steps": steps, "wall_s": time.perf_counter() - start,
           "beta": beta if process == "cld" else None}
    if digits:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from digits import classifier, score

        svm, _, _ = classifier()
        samples = trainer.sample(10_000, seed=seed).numpy()
        out.update(score(samples, svm))
    else:
        out.update(json.loads((run / "metrics.json").read_text()))
    out = {k: v for k, v in out.items() if v is None or isinstance(v, (int, float, str, list))}
    done.write_text(json.dumps(out) + "\n")
    return out


def write(results: list[dict], args: argparse.Namespace, elapsed: float) -> None:
    import torch

    lines = ["# CLD against the cosine process (gdiff issue 18)", "",
             f"Command: `{' '.join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])}`  ",
             f"Machine: {os.cpu_count()} CPU cores (nproc, shared with other jobs), "
             f"{platform.processor() or platform.machine()}, torch {torch.__version__}; one training at a time, "
             f"train.threads=1.  ",
             f"Date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}; wall time so far {elapsed / 60:.1f} min.  ",
             f"Budget: 25-Gaussians {args.mog_steps} steps per run (the recipes ship 8000), digits "
             f"{args.digits_steps} steps (the recipe ships 3000): reduced to fit the shared CPU, so these are "
             f"early-training comparisons, not converged numbers. CLD: M = 0.25, gamma = 0.04, B(t) = 4 t.", "",
             "## 25-Gaussians (Frechet lower is better; modes of 25; high quality = share within 3 std of a centre)",
             "", "| recipe | process | T | seed | Frechet | modes | high quality | wall s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r["recipe"].startswith("mog25"):
            process = f"cld, beta {r.get('beta', BETA):g}" if r["recipe"].endswith("_cld") else "cosine"
            lines.append(f"| {r['recipe'].removesuffix('_cld')} | {process} | {r['T']} | {r['seed']} | "
                         f"{r['frechet']:.3f} | {r['modes_covered']} | {r['high_quality']:.3f} | {r['wall_s']:.0f} |")
    lines += ["", "## Digits (independent SVM on 10,000 samples; real class shares are 9.9-10.2 %)", "",
              "| recipe | process | T | seed | classes | TV to real shares | confident (> 0.9) | class shares | "
              "wall s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r["recipe"].startswith("digits"):
            process = "cld" if r["recipe"].endswith("_cld") else "cosine"
            lines.append(f"| digits_siddm | {process} | {r['T']} | {r['seed']} | {r['classes']} | "
                         f"{r['tv_classes']:.3f} | {r['confident']:.3f} | {r['class_shares']} | {r['wall_s']:.0f} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cld.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mog-steps", type=int, default=2000)
    parser.add_argument("--digits-steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--betas", type=float, nargs="+", default=[BETA])
    parser.add_argument("--runs", type=Path, default=Path("/tmp/gdiff_cld"))
    args = parser.parse_args()
    start, results = time.perf_counter(), []
    for base, process, T, seed, beta in plan(args):
        results.append(run_one(base, process, T, seed, beta, args))
        print(json.dumps(results[-1]), flush=True)
        write(results, args, time.perf_counter() - start)


if __name__ == "__main__":
    main()
