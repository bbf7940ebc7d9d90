"""The papers' central claim on data this machine trains: sample quality against NFE and wall time.

    python benchmarks/nfe.py [--data mog25 digits] [--max-steps mog25=4000 digits=1000] [--ts 1 2 4 8]
                             [--ks 2 4 8 16 32 64 128 256 1000] [--jobs 2] [--runs /tmp/nfe]

DDGAN and SIDDM are trained at T in ``--ts`` (the shipped ``<data>_ddgan`` / ``<data>_siddm`` recipes with
``diffusion.num_steps=T``) and sampled with NFE = T. The Gaussian diffusion baseline is the SIDDM recipe's
generator network trained as a plain denoiser (``objective: {type: gaussian}``, ``discriminator: {type: none}``,
``generator.z_dim: 0``, x0 prediction, continuous time) with the same steps, batch and optimiser, and sampled
with K in ``--ks`` steps by DDPM's ancestral sampler and by DDIM. Every run gets the same ``train.max_steps``.

Quality: 25-Gaussians -- Frechet distance of Gaussian fits and modes covered (``gdiff.metrics.mixture``, 10,000
samples); digits -- FID in the feature space of gdiff's digit classifier (``--feature-extractor digits``, 1,000
samples against the 1,797 real digits) and the share of samples the classifier reads with confidence > 0.9.
A "real data" row scores real examples drawn with replacement at the same sample count: each metric's floor.
Wall time: seconds to draw the samples in this process (one batch, the threads this process has), measured
one configuration after the other, so ratios within one table are comparable and absolute values are not.

Runs are kept in ``--runs`` (a finished run is not trained again; measured points are cached in
``--runs/points.json``). Writes ``benchmarks/results/nfe.md`` and ``nfe.png``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BASELINE = ["generator.z_dim=0", "discriminator={type: none}", "objective={type: gaussian}",
            "diffusion.time_sampling=continuous", "diffusion.num_steps=8"]
SAMPLES = {"mog25": 10_000, "digits": 1_000}
COMMON = ["train.trackers=[]", "train.threads=1", "train.checkpoint_every=0", "train.sample_every=0"]


def run_specs(data: str, ts: list[int]) -> list[tuple[str, int | None, str, list[str]]]:
    """(method, T or None, recipe, overrides) of every training run for one data set."""
    specs: list[tuple[str, int | None, str, list[str]]] = [
        (method, t, f"{data}_{method}", [f"diffusion.num_steps={t}"]) for method in ("ddgan", "siddm") for t in ts]
    specs.append(("gaussian", None, f"{data}_siddm", BASELINE))
    return specs


def run_dir(runs: Path, data: str, method: str, t: int | None, max_steps: int) -> Path:
    return runs / f"{data}_{method}{'' if t is None else f'_T{t}'}_{max_steps}"


def train(recipe: str, overrides: list[str], path: Path, max_steps: int) -> float:
    """Train (unless finished) with ``python -m gdiff.train``; the wall time in seconds."""
    seconds_file = path / "train_seconds.txt"
    if (path / "metrics.json").is_file() and seconds_file.is_file():
        return float(seconds_file.read_text())
    path.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with (path / "train.log").open("w") as log:
        subprocess.run([sys.executable, "-m", "gdiff.train", str(ROOT / "recipes" / f"{recipe}.yaml"), *overrides,
                        *COMMON, f"train.max_steps={max_steps}", "--run-dir", str(path)], cwd=ROOT, check=True,
                       stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    seconds = time.perf_counter() - start
    seconds_file.write_text(f"{seconds:.1f}\n")
    return seconds


def quality(data: str, samples: torch.Tensor, source: object, cache: Path) -> dict[str, float]:
    """Mixture metrics (25-Gaussians) or digit-classifier FID and confident share (digits)."""
    if data == "mog25":
        from gdiff.metrics.mixture import mixture_metrics

        return mixture_metrics(samples, source.points, source.centres, source.mode_std)
    from gdiff.eval import image_metrics
    from gdiff.eval.digit_classifier import digit_classifier
    from gdiff.eval.fidelity import FidelityOptions

    out = image_metrics(samples, source, ["fid"], FidelityOptions(feature_extractor="digits", cache_dir=str(cache)),
                        reference_count=len(source))
    _, net, _ = digit_classifier(source, cache)
    with torch.no_grad():
        confidence = torch.softmax(net(samples.float())[1], dim=1).max(1).values
    return {**out, "confident": float((confidence > 0.9).double().mean())}


def measure(path: Path, data: str, steps: int | None, sampler: str, cache: Path) -> dict[str, float]:
    """Draw the samples of one configuration (seed 0) from the run's exported EMA generator, time them, score them
    against the data set."""
    from gdiff import data as datasets
    from gdiff.export import load_generator

    gen = load_generator(path)
    num = SAMPLES[data]
    gen.sample(min(num, 100), steps=steps, seed=1, batch_size=num, sampler=sampler)  # warm-up
    start = time.perf_counter()
    samples = gen.sample(num, steps=steps, seed=0, batch_size=num, sampler=sampler)
    seconds = time.perf_counter() - start
    return {"nfe": gen.nfe(steps), "sample_s": seconds,
            **quality(data, samples, datasets.build({"type": data}), cache)}


def data_floor(data: str, cache: Path) -> dict[str, float]:
    """The metrics of real data at the same sample count (drawn with replacement, seed 0): the floor a perfect
    generator reaches with this many samples."""
    from gdiff import data as datasets

    source = datasets.build({"type": data})
    raw = source.raw[torch.randint(0, len(source), (SAMPLES[data],), generator=torch.Generator().manual_seed(0))]
    return {"nfe": 0, "sample_s": float("nan"), **quality(data, source.to_data(source.to_model(raw)), source, cache)}


def write_markdown(points: list[dict], args: argparse.Namespace, train_s: dict, elapsed: float) -> None:
    lines = ["# Quality against NFE and wall time: DDGAN and SIDDM against a Gaussian diffusion baseline", "",
             f"Command: `{' '.join(shlex.quote(a) for a in ['python', *sys.argv])}`  ",
             f"Machine: {os.cpu_count()} CPU cores shared with other jobs, {platform.machine()}, torch "
             f"{torch.__version__}, Python {platform.python_version()}; {args.jobs} training process(es) in parallel, "
             f"1 torch thread each; sampling in the main process with {torch.get_num_threads()} thread(s).  ",
             f"Date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}; training wall time summed over the runs "
             f"{sum(train_s.values()) / 60:.0f} min, sampling {sum(p['sample_s'] for p in points if p['nfe']) / 60:.0f}"
             f" min; this invocation {elapsed / 60:.1f} min (finished runs and measured points in --runs are reused)."
             "  ",
             f"Budget: train.max_steps {', '.join(f'{d} {args.max_steps[d]}' for d in args.data)} per run (the "
             "recipes' batch sizes and optimisers; same steps for every method), seed 0, one run per point.", ""]
    for data in args.data:
        rows = [p for p in points if p["data"] == data]
        if not rows:
            continue
        if data == "mog25":
            lines += ["## 25-Gaussians", "", f"{SAMPLES[data]:,} samples; Frechet distance of Gaussian fits (lower "
                      "is better), modes covered of 25, share of samples within 3 std of a centre.", "",
                      "| method | NFE | Frechet | modes | high quality | sampling s | training s |",
                      "|---|---|---|---|---|---|---|"]
            fmt = ("| {label} | {nfe} | {frechet:.3f} | {modes_covered} | {high_quality:.3f} | {sample_s:.3f} "
                   "| {train} |")
        else:
            lines += ["## Digits (scikit-learn 8x8)", "", f"{SAMPLES[data]:,} samples; FID in the feature space "
                      "of gdiff's digit classifier against the 1,797 real digits (lower is better; not comparable "
                      "with Inception FIDs), share of samples the classifier reads with confidence > 0.9 (held-out "
                      "real digits: see the classifier accuracy below).", "",
                      "| method | NFE | FID (digit features) | confident | sampling s | training s |",
                      "|---|---|---|---|---|---|"]
            fmt = "| {label} | {nfe} | {fid:.3f} | {confident:.3f} | {sample_s:.3f} | {train} |"
        for p in sorted(rows, key=lambda p: (p["label"], p["nfe"])):
            train = f"{train_s[p['run']]:.0f}" if p["run"] in train_s else "-"
            line = fmt.format(**p, train=train)
            if p["label"] == "real data":  # no network calls, no sampling time
                line = line.replace("| real data | 0 |", "| real data (floor) | - |").replace("| nan |", "| - |")
            lines.append(line)
        accuracy = [p["classifier_test_accuracy"] for p in rows if "classifier_test_accuracy" in p]
        if accuracy:
            lines += ["", f"Digit classifier accuracy on held-out real digits: {accuracy[0]:.3f}."]
        lines.append("")
    lines += ["Plot: `nfe.png` (quality against NFE, and against sampling time).", ""]
    (RESULTS / "nfe.md").write_text("\n".join(lines))


METRICS = {"mog25": [("frechet", "Frechet distance", "log"),
                     ("high_quality", "share within 3 std of a mode", "linear")],
           "digits": [("fid", "FID (digit classifier features)", "log"),
                      ("confident", "share read with confidence > 0.9", "linear")]}


def plot(points: list[dict], args: argparse.Namespace) -> None:
    """Per data set and metric: quality against NFE (left) and against sampling time (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(data, *metric) for data in args.data for metric in METRICS[data]]
    fig, axes = plt.subplots(len(panels), 2, squeeze=False, figsize=(10, 3.6 * len(panels)))
    for row, (data, key, name, scale) in enumerate(panels):
        rows = [p for p in points if p["data"] == data]
        for p in rows:
            if p["label"] == "real data":
                for col in (0, 1):
                    axes[row, col].axhline(p[key], color="0.5", linestyle=":", label="real data (same N)")
        for label in sorted({p["label"] for p in rows} - {"real data"}):
            series = sorted((p for p in rows if p["label"] == label), key=lambda p: p["nfe"])
            style = "o-" if label.startswith(("DDGAN", "SIDDM")) else "s--"
            axes[row, 0].plot([p["nfe"] for p in series], [p[key] for p in series], style, label=label)
            axes[row, 1].plot([p["sample_s"] for p in series], [p[key] for p in series], style, label=label)
        for col, xlabel in enumerate(("NFE (network calls per sample)", f"seconds for {SAMPLES[data]:,} samples")):
            ax = axes[row, col]
            ax.set_xscale("log")
            ax.set_yscale(scale)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(name)
            ax.set_title(data)
            ax.grid(True, which="both", alpha=0.3)
        axes[row, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "nfe.png", dpi=90)
    plt.close(fig)


def parse_budget(items: list[str]) -> dict[str, int]:
    out = {"mog25": 4000, "digits": 1000}
    for item in items:
        data, _, steps = item.partition("=")
        out[data] = int(steps)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=["mog25", "digits"], choices=["mog25", "digits"])
    parser.add_argument("--max-steps", nargs="*", default=[], help="DATA=STEPS (default mog25=4000 digits=1000)")
    parser.add_argument("--ts", type=int, nargs="+", default=[1, 2, 4, 8], help="T of DDGAN and SIDDM")
    parser.add_argument("--ks", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64, 128, 256, 1000],
                        help="sampling steps of the Gaussian baseline")
    parser.add_argument("--jobs", type=int, default=2, help="training processes in parallel")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench_nfe")
    args = parser.parse_args(argv)
    args.max_steps = parse_budget(args.max_steps)
    args.runs.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    jobs = [(data, *spec) for data in args.data for spec in run_specs(data, args.ts)]
    train_s: dict[str, float] = {}
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {str(run_dir(args.runs, d, m, t, args.max_steps[d])):
                   pool.submit(train, recipe, overrides, run_dir(args.runs, d, m, t, args.max_steps[d]),
                               args.max_steps[d]) for d, m, t, recipe, overrides in jobs}
        for path, future in futures.items():
            train_s[path] = future.result()
            print(f"[{(time.perf_counter() - start) / 60:5.1f} min] trained {path} in {train_s[path]:.0f} s",
                  flush=True)
    cache_file = args.runs / "points.json"
    cached = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    points = []
    for data, method, t, _, _ in jobs:
        path = run_dir(args.runs, data, method, t, args.max_steps[data])
        configs = ([(f"{method.upper()} (T = NFE)", t, "ancestral")] if t is not None else
                   [(f"Gaussian, {name}", k, sampler) for name, sampler in (("DDPM", "ancestral"), ("DDIM", "ddim"))
                    for k in args.ks])
        for label, steps, sampler in configs:
            key = f"{path}|{steps}|{sampler}"
            if key not in cached:
                cached[key] = measure(path, data, steps, sampler, args.runs / "cache")
                cache_file.write_text(json.dumps(cached, indent=1))
            points.append({"data": data, "label": label, "run": str(path), **cached[key]})
            p = points[-1]
            print(f"{data} {label} NFE {p['nfe']}: {p.get('frechet', p.get('fid')):.3f} ({p['sample_s']:.2f} s)",
                  flush=True)
    for data in args.data:
        key = f"{data}|floor"
        if key not in cached:
            cached[key] = data_floor(data, args.runs / "cache")
            cache_file.write_text(json.dumps(cached, indent=1))
        points.append({"data": data, "label": "real data", "run": "", **cached[key]})
    write_markdown(points, args, train_s, time.perf_counter() - start)
    plot(points, args)


if __name__ == "__main__":
    main()
