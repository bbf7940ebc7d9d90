"""Speed of the paper networks: sampling, training iterations, achieved GFLOP/s and peak memory.

For each recipe (CIFAR-10 DDGAN, ImageNet-64 SIDDM; built by ``gdiff.build.build``, the data set standing in by
its shape) and each case:

* ``sample``: NFE-T reverse chain ``gdiff.sampling.sample`` on a batch; images/s.
* ``train``: one training iteration without R1 (a step where lazy R1 is off): zero grads, D loss backward
  (G frozen), G loss backward (D frozen), both Adam steps; images/s.
* ``train_r1``: the same on an R1 step (lazy-R1 step 0); only for objectives with an R1 term.

Each (recipe, case, dtype, layout) runs in its own subprocess, so its peak resident memory (``ru_maxrss``)
is its own; ``working MB`` is that peak minus the resident memory after building the networks and inputs.
FLOPs of one call are counted with ``torch.utils.flop_counter.FlopCounterMode`` (matmul, conv, attention;
forward and backward). The machine's float32 matmul rate is measured in the same subprocess, interleaved
with the timed repeats (the machine is shared: compare the ratio, not the absolute numbers); bf16 cases
also measure the bf16 matmul rate and the relative error of the bf16 samples against float32 ones drawn
with the same seeds. Networks are freshly initialised; their near-zero-initialised output layers get
unit-scale weights so that samples are not trivially zero (this changes no cost).

    python benchmarks/speed.py --out benchmarks/results/speed.md
    python benchmarks/speed.py --recipes cifar10_ddgan --dtype fp32 bf16 --layout contiguous channels_last
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from gdiff import recipes
from gdiff.build import Built, build
from gdiff.objectives.r1 import R1Penalty
from gdiff.sampling import sample

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {"cifar10_ddgan": 8, "imagenet64_siddm": 2}  # recipe -> batch size
CASES = ("sample", "train", "train_r1")
DTYPES = {"fp32": None, "bf16": torch.bfloat16}


class GlobalFlopCounter(FlopCounterMode):
    """``FlopCounterMode`` counting only the global total. Its per-module tracker installs backward hooks that
    break ``torch.autograd.grad`` (R1's gradient penalty), so it is replaced by a tracker of no modules."""

    class _NoModules:
        parents = ("Global",)

        def __enter__(self) -> None: ...

        def __exit__(self, *args: object) -> None: ...

    def __init__(self) -> None:
        super().__init__(display=False)
        self.mod_tracker = self._NoModules()


def matmul_rate(dtype: torch.dtype = torch.float32, n: int = 2048) -> float:
    """GFLOP/s of one n x n matmul (after one warm-up)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    start = time.perf_counter()
    a @ b
    return 2 * n**3 / (time.perf_counter() - start) / 1e9


def wake_up_(model: nn.Module) -> None:
    """Unit-scale (Xavier) weights for the convolutions that start at or near zero."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.weight.abs().max() < 1e-3:
            nn.init.xavier_uniform_(m.weight)


def load_recipe(recipe: str, dry_run: bool = False) -> Built:
    """The recipe's parts (``dry_run``: networks on the meta device, for reading the objective)."""
    return build(recipes.load(ROOT / "recipes" / f"{recipe}.yaml"), dry_run=dry_run, stand_in_data=True)


def build_case(recipe: str, layout: str) -> dict:
    torch.manual_seed(0)
    built = load_recipe(recipe)
    G, D = built.generator, built.discriminator
    wake_up_(G)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    G, D = G.to(memory_format=fmt), D.to(memory_format=fmt)
    batch, shape, classes = RECIPES[recipe], built.data_shape, built.num_classes
    gen = torch.Generator().manual_seed(1)
    x0 = (torch.rand(batch, *shape, generator=gen) * 2 - 1).contiguous(memory_format=fmt)
    labels = torch.randint(classes, (batch,), generator=gen) if classes else None
    return dict(G=G, D=D, schedule=built.schedule, obj=built.objective, x0=x0, labels=labels, batch=batch, fmt=fmt)


def sampler(c: dict, autocast: torch.dtype | None, seed: int = 2) -> Callable[[], torch.Tensor]:
    x_T = torch.randn(c["x0"].shape, generator=torch.Generator().manual_seed(seed)).contiguous(
        memory_format=c["fmt"])

    def run() -> torch.Tensor:
        with torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            gen = torch.Generator().manual_seed(seed)
            return sample(c["G"], c["schedule"], x_T, c["labels"], generator=gen)
    return run


def trainer(c: dict, autocast: torch.dtype | None, step: int) -> Callable[[], None]:
    G, D, obj = c["G"], c["D"], c["obj"]
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.5, 0.9))

    def phase(net: nn.Module, opt: torch.optim.Optimizer, frozen: nn.Module, loss_fn: Callable, **kw) -> None:
        net.requires_grad_(True)
        frozen.requires_grad_(False)
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            loss = loss_fn(G, D, c["schedule"], c["x0"], c["labels"], **kw)
        loss.total.backward()
        opt.step()

    def run() -> None:
        phase(D, opt_d, G, obj.discriminator_loss, step=step)
        phase(G, opt_g, D, obj.generator_loss)
    return run


def run_case(recipe: str, case: str, dtype: str, layout: str, repeats: int) -> dict:
    """Runs in a subprocess; returns the measurements as a dict."""
    c = build_case(recipe, layout)
    autocast = DTYPES[dtype]
    if case == "sample":
        fn = sampler(c, autocast)
    else:
        fn = trainer(c, autocast, step=0 if case == "train_r1" else 1)
    rss_built = _rss_mb()
    with GlobalFlopCounter() as counter:  # also the warm-up call
        fn()
    times, rates = [], []
    for _ in range(repeats):
        rates.append(matmul_rate())
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    flops = counter.get_total_flops()
    out = dict(recipe=recipe, case=case, dtype=dtype, layout=layout, batch=c["batch"], seconds=seconds,
               images_per_s=c["batch"] / seconds, gflop=flops / 1e9, gflops=flops / 1e9 / seconds,
               matmul_fp32=statistics.median(rates), times=times)
    if autocast is not None:
        out["matmul_bf16"] = matmul_rate(torch.bfloat16, n=512)
        if case == "sample":  # same seeds, so the float32 chain draws the same z and noise
            full = sampler(c, None)()
            out["rel_err"] = ((result.float() - full).norm() / full.norm()).item()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.update(peak_mb=peak, working_mb=peak - rss_built)
    return out


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


LEGEND = """# Speed of the paper networks

Written by `benchmarks/speed.py` (its docstring defines every case). Per row: median (`s`) and best
(`best s`) seconds of the timed repeats, images/s and GFLOP/s from the median; `matmul` = float32 2048^2
matmul GFLOP/s measured in the same process, interleaved with the repeats; `of matmul` = achieved GFLOP/s /
matmul; FLOPs from `torch.utils.flop_counter` (matmul, conv, attention; backward included); `peak MB` =
peak RSS of the case's process, `working MB` = peak minus RSS after building the networks (so it
includes activations and, for training, gradients and Adam state); `bf16 matmul` =
bf16 512^2 matmul GFLOP/s; `bf16 rel. err` = relative L2 error of bf16-autocast samples against float32
samples with the same seeds.
"""


def markdown(results: list[dict], command: str) -> str:
    """One report section: the command, the machine and a table row per case."""
    lines = [
        f"## `{command}`", "",
        f"{os.cpu_count()} CPU threads ({platform.machine()}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end, "
        f"{datetime.datetime.now().isoformat(timespec='minutes')}.", "",
        "| recipe | case | dtype | layout | batch | s | best s | images/s | GFLOP | GFLOP/s | matmul "
        "| of matmul | peak MB | working MB | bf16 matmul | bf16 rel. err |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['recipe']} | {r['case']} | {r['dtype']} | {r['layout']} "
                         f"| failed: {r['error']} | | | | | | | | | | | |")
            continue
        lines.append(
            f"| {r['recipe']} | {r['case']} | {r['dtype']} | {r['layout']} | {r['batch']} "
            f"| {r['seconds']:.2f} "
            f"| {min(r['times']):.2f} | {r['images_per_s']:.2f} | {r['gflop']:.0f} | {r['gflops']:.0f} "
            f"| {r['matmul_fp32']:.0f} "
            f"| {r['gflops'] / r['matmul_fp32']:.2f} | {r['peak_mb']:.0f} | {r['working_mb']:.0f} "
            f"| {r.get('matmul_bf16', float('nan')):.2f} | {r.get('rel_err', float('nan')):.1e} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--dtype", nargs="+", default=["fp32"], choices=list(DTYPES))
    parser.add_argument("--layout", nargs="+", default=["contiguous"],
                        choices=["contiguous", "channels_last"])
    parser.add_argument("--channels-last", action="store_true", help="shorthand for --layout channels_last")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, help="write a markdown report here")
    parser.add_argument("--append", action="store_true", help="append the report to --out as a new section")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(run_case(**json.loads(args.child))))
        return
    layouts = ["channels_last"] if args.channels_last else args.layout
    results = []
    for recipe in args.recipes:
        if not (ROOT / "recipes" / f"{recipe}.yaml").exists():
            print(f"skipping {recipe}: recipes/{recipe}.yaml does not exist", file=sys.stderr)
            continue
        has_r1 = any(isinstance(t, R1Penalty) for t in load_recipe(recipe, dry_run=True).objective.terms)
        for dtype in args.dtype:
            for layout in layouts:
                for case in args.cases:
                    if case == "train_r1" and not has_r1:
                        continue
                    spec = dict(recipe=recipe, case=case, dtype=dtype, layout=layout, repeats=args.repeats)
                    command = [sys.executable, __file__, "--threads", str(args.threads), "--child",
                               json.dumps(spec)]
                    proc = subprocess.run(command, capture_output=True, text=True)
                    if proc.returncode:
                        result = {**spec, "error": proc.stderr.strip().splitlines()[-1]}
                    else:
                        result = json.loads(proc.stdout.strip().splitlines()[-1])
                    print(json.dumps(result), flush=True)
                    results.append(result)
    report = markdown(results, "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]))
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if args.append and args.out.exists():
            args.out.write_text(args.out.read_text() + "\n" + report)
        else:
            args.out.write_text(LEGEND + "\n" + report)


if __name__ == "__main__":
    main()
