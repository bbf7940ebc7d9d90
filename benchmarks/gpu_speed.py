"""GPU speed of the paper networks: sampling and training in fp32, bf16 and compiled, beside the DDGAN reference.

For each recipe (CIFAR-10 DDGAN, CIFAR-10 SIDDM, ImageNet-64 SIDDM; data shape, networks, schedule, objective and
per-pass batch built from ``recipes/`` by ``gdiff.build.build``, the data set standing in by its shape) and each
mode (:data:`MODES`: dtype, memory layout, torch.compile), in one process:

* ``sample``: the NFE-T reverse chain ``gdiff.sampling.sample`` on a batch of ``--sample-batch``; images/s.
* ``train``: one iteration as the Trainer runs it (D step: ``objective.discriminator_loss`` backward, Adam;
  G step with D frozen; EMA update; fused Adam on CUDA) at a step where lazy R1 is off; images/s.
* ``train_r1 f``: the same on an R1 step with ``r1_batch_fraction: f`` (recipes with R1 only). The pass that
  is differentiated twice runs on the uncompiled D (``D_eager``); the others on the compiled one. The summary
  line gives the amortised rate of lazy R1 ((L - 1) plain steps + 1 R1 step per L), the cost of an R1 step
  against a plain one, and the GPU-days of the recipe's schedule (``train.max_steps x train.batch_size``
  images) at the amortised rate.

With ``--reference DIR`` (a directory holding ``score_sde/`` of github.com/NVlabs/denoising-diffusion-gan, e.g.
``git archive HEAD score_sde | tar -x -C DIR``; for measurement only) the reference's CIFAR-10 networks are timed in the
same process (fp32, its own CUDA ops; ``--reference-native`` for its pure-PyTorch path): NFE-4 sampling, a
training iteration as its code runs it (a generator backward inside the D step, the real input always
requiring grad) and its R1 step (gamma 0.02 on the full batch), and every CIFAR-10 DDGAN row gets its ratio to
the reference. Every row also gets its achieved TFLOP/s (FLOPs counted once by ``torch.utils.flop_counter``)
against the machine's matmul rate measured at the start in the row's dtype.

Prints one JSON line per measurement and, with ``--out``, writes (``--append``: adds) a markdown section.
On the device machine (each command under 10 minutes: pick recipes and modes per command; compiling a
training step takes minutes):

    python benchmarks/gpu_speed.py --recipes cifar10_ddgan --modes fp32 bf16_cl_compile --reference .bench/ref
    python benchmarks/gpu_speed.py --recipes cifar10_siddm imagenet64_siddm --modes bf16 bf16_cl_compile
    python benchmarks/gpu_speed.py --device cpu --tiny        # a smoke run (seconds) of the eager paths
    python benchmarks/gpu_speed.py --device cpu --tiny --modes bf16_cl_compile --compile-backend aot_eager
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
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from speed import GlobalFlopCounter  # benchmarks/speed.py: a FLOP counter that lets autograd.grad run
from timm.utils import ModelEmaV3
from torch import nn

from gdiff import objectives, recipes
from gdiff.build import Built, build
from gdiff.objectives.r1 import R1Penalty
from gdiff.sampling import sample

ROOT = Path(__file__).resolve().parents[1]


# recipe -> sampling batch; the training batch is the recipe's per-pass batch on one GPU (``Built.micro_batch``:
# 256, 64 and 32 images, docs/method.md#measured-costs)
RECIPES = {"cifar10_ddgan": 500, "cifar10_siddm": 500, "imagenet64_siddm": 100}


@dataclass(frozen=True)
class Mode:
    autocast: torch.dtype | None
    channels_last: bool
    compile: bool


MODES = {"fp32": Mode(None, False, False), "fp32_compile": Mode(None, False, True),
         "bf16": Mode(torch.bfloat16, False, False), "bf16_cl": Mode(torch.bfloat16, True, False),
         "bf16_cl_compile": Mode(torch.bfloat16, True, True)}
# --tiny: the same network types with a few channels and two levels, attention at the second (a smoke run of
# every code path at the recipe's resolution, not a benchmark)
TINY_UNET = ["channels=32", "channel_mult=[1, 2]", "num_res_blocks=1", "num_head_channels=16", "attention"]
TINY_NETS = {"ncsnpp": ["channels=16", "channel_mult=[1, 2]", "num_res_blocks=1", "attention"],
             "ddgan_small": ["channels=16", "t_emb_dim=32"], "unet": TINY_UNET, "unet_discriminator": TINY_UNET}
# the reference's CIFAR-10 generator configuration (its README's training command)
REF_CIFAR10 = dict(image_size=32, num_channels=3, centered=True, num_channels_dae=128, n_mlp=4, ch_mult=[1, 2, 2, 2],
                   num_res_blocks=2, attn_resolutions=(16,), dropout=0., resamp_with_conv=True, conditional=True,
                   fir=True, fir_kernel=[1, 3, 3, 1], skip_rescale=True, resblock_type='biggan', progressive='none',
                   progressive_input='residual', progressive_combine='sum', embedding_type='positional',
                   fourier_scale=16., not_use_tanh=False, nz=100, z_emb_dim=256, t_emb_dim=256)
REF_R1_GAMMA, REF_LAZY = 0.02, 15


# ------------------------------------------------------------------------------------------- timing
@dataclass
class Clock:
    device: torch.device
    warmup: int
    repeats: int

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def time(self, fn: Callable[[], Any]) -> tuple[float, float | None]:
        """(median seconds of ``repeats`` calls after ``warmup`` calls, peak MiB allocated or None on CPU)."""
        for _ in range(self.warmup):
            fn()
        self.sync()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        times = []
        for _ in range(self.repeats):
            start = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated(self.device) / 2**20 if self.device.type == "cuda" else None
        return statistics.median(times), peak

    def matmul_tflops(self, dtype: torch.dtype, n: int) -> float:
        a, b = (torch.randn(n, n, device=self.device, dtype=dtype) for _ in range(2))
        seconds, _ = Clock(self.device, 2, 5).time(lambda: a @ b)
        return 2 * n**3 / seconds / 1e12


def count_flops(fn: Callable[[], Any]) -> float:
    with GlobalFlopCounter() as counter:
        fn()
    return counter.get_total_flops()


# ---------------------------------------------------------------------------------------- gdiff cases
def load(recipe: str, tiny: bool) -> recipes.Recipe:
    """The shipped recipe; with ``tiny``, its networks shrunk to :data:`TINY_NETS` at the same resolution."""
    path = ROOT / "recipes" / f"{recipe}.yaml"
    if not tiny:
        return recipes.load(path)
    full = recipes.load(path)
    resolution = build(full, dry_run=True, stand_in_data=True).data_shape[-1]
    overrides = [f"{where}.{key}" if key != "attention" else f"{where}.attention_resolutions=[{resolution // 2}]"
                 for where in ("generator", "discriminator")
                 for key in TINY_NETS.get(getattr(full, where)["type"], [])]
    return recipes.load(path, overrides)


def lazy_period(objective: objectives.Objective) -> int:
    """The lazy R1 period of ``objective`` (0: no R1 term)."""
    r1 = [t for t in objective.terms if isinstance(t, R1Penalty)]
    return r1[0].every if r1 else 0


def schedule_images(recipe: recipes.Recipe) -> int:
    """Images in the recipe's schedule: train.max_steps x train.batch_size."""
    return recipe.train.max_steps * recipe.train.batch_size


def _fmt(mode: Mode) -> torch.memory_format:
    return torch.channels_last if mode.channels_last else torch.contiguous_format


def _inputs(b: Built, batch: int, device: torch.device, mode: Mode, seed: int) -> tuple[torch.Tensor, Any]:
    gen = torch.Generator(device=device).manual_seed(seed)
    x = (torch.rand(batch, *b.data_shape, generator=gen, device=device) * 2 - 1).contiguous(memory_format=_fmt(mode))
    labels = torch.randint(b.num_classes, (batch,), generator=gen, device=device) if b.num_classes else None
    return x, labels


def sampler(b: Built, G: nn.Module, batch: int, mode: Mode, device: torch.device) -> Callable[[], torch.Tensor]:
    x_T, labels = _inputs(b, batch, device, mode, seed=1)

    @torch.no_grad()
    def run() -> torch.Tensor:
        with torch.autocast(device.type, dtype=mode.autocast or torch.bfloat16, enabled=mode.autocast is not None):
            return sample(G, b.schedule, torch.randn_like(x_T), labels)
    return run


def trainer(b: Built, G: nn.Module, D: nn.Module, D_eager: nn.Module, objective: objectives.Objective,
            batch: int, mode: Mode, device: torch.device, step: int) -> Callable[[], None]:
    """One Trainer iteration at ``step`` (D step, G step with D frozen, EMA)."""
    x0, labels = _inputs(b, batch, device, mode, seed=2)
    fused = {"fused": True} if device.type == "cuda" else {}
    opt_g = torch.optim.Adam(b.generator.parameters(), lr=1e-6, betas=(0.5, 0.9), **fused)
    opt_d = torch.optim.Adam(b.discriminator.parameters(), lr=1e-6, betas=(0.5, 0.9), **fused)
    ema = ModelEmaV3(b.generator, decay=0.9999, use_warmup=False).requires_grad_(False)
    autocast = dict(device_type=device.type, dtype=mode.autocast or torch.bfloat16, enabled=mode.autocast is not None)

    def run() -> None:
        opt_d.zero_grad(set_to_none=True)
        with torch.autocast(**autocast):
            losses = objective.discriminator_loss(G, D, b.schedule, x0, labels, step, D_eager=D_eager)
        losses.total.backward()
        opt_d.step()
        b.discriminator.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        with torch.autocast(**autocast):
            losses = objective.generator_loss(G, D, b.schedule, x0, labels, step)
        losses.total.backward()
        opt_g.step()
        b.discriminator.requires_grad_(True)
        ema.update(b.generator, step=step)
    return run


def row(recipe: str, case: str, mode: str, batch: int, seconds: float, peak: float | None, flops: float,
        matmul: dict[str, float], **extra: Any) -> dict:
    tflops = flops / seconds / 1e12
    rate = matmul["bf16" if MODES[mode].autocast is not None else "fp32"]
    return dict(recipe=recipe, case=case, mode=mode, batch=batch, median_s=round(seconds, 5),
                images_per_s=round(batch / seconds, 2), peak_MiB=None if peak is None else round(peak),
                gflop_per_image=round(flops / batch / 1e9, 2), tflops=round(tflops, 3),
                of_matmul=round(tflops / rate, 3), **extra)


def run_recipe(recipe: str, args: argparse.Namespace, clock: Clock, matmul: dict[str, float],
               emit: Callable[[dict], None]) -> None:
    """Every mode of ``args.modes`` on fresh networks: sampling, a plain and R1 training steps, the summary."""
    device, recipe_ = clock.device, load(recipe, args.tiny)
    batches = {"sample": args.sample_batch or (4 if args.tiny else RECIPES[recipe]),
               "train": args.train_batch or (8 if args.tiny else build(recipe_, dry_run=True).micro_batch)}
    flops: dict[str, float] = {}  # per case, counted once on the eager networks of the first mode

    def measure(case: str, mode_name: str, make: Callable[[bool], Callable[[], Any]], **extra: Any) -> float | None:
        """Time ``make(compiled=True)`` and emit its row; None (and an error row) if it runs out of memory."""
        batch = batches[case.split("_")[0]]
        try:
            if case not in flops:
                flops[case] = count_flops(make(False))
            seconds, peak = clock.time(make(True))
        except torch.OutOfMemoryError:
            emit(dict(recipe=recipe, case=case, mode=mode_name, batch=batch, error="out of memory"))
            return None
        emit(row(recipe, case, mode_name, batch, seconds, peak, flops[case], matmul, **extra))
        return seconds

    def one_mode(mode_name: str) -> None:
        mode = MODES[mode_name]
        torch.manual_seed(0)
        b = build(recipe_, stand_in_data=True)
        G, D = b.generator.to(device, memory_format=_fmt(mode)), b.discriminator.to(device, memory_format=_fmt(mode))
        compile_ = dict(mode=args.compile_mode, backend=args.compile_backend)
        nets_ = {False: (G, D), True: (torch.compile(G, **compile_), torch.compile(D, **compile_))
                 if mode.compile else (G, D)}
        if "sample" in args.cases:
            G.eval()
            measure("sample", mode_name, lambda c: sampler(b, nets_[c][0], batches["sample"], mode, device),
                    nfe=b.schedule.num_steps)
            G.train()
        if "train" not in args.cases:
            return
        lazy = lazy_period(b.objective)
        steps = {"train": (b.objective, 1)}
        if lazy:
            for f in args.r1_fractions:
                steps[f"train_r1 {f:g}"] = (objectives.from_config({**recipe_.objective, "r1_batch_fraction": f}), 0)
        results: dict[str, float] = {}
        for case, (objective, step) in steps.items():
            sub = objective.grad_batch_size(D, batches["train"]) if objective.double_backward(step) else None
            seconds = measure(case, mode_name, lambda c, o=objective, s=step: trainer(
                b, *nets_[c], D, o, batches["train"], mode, device, s), r1_batch=sub)
            if seconds is not None:
                results[case] = seconds
        plain = results.pop("train", None)
        if plain is None:
            return
        images = schedule_images(recipe_)
        for case, r1_seconds in (results if lazy else {"": plain}).items():  # case: "train_r1 f"
            amortised = ((lazy - 1) * plain + r1_seconds) / lazy if lazy else plain
            rate = batches["train"] / amortised
            emit(dict(recipe=recipe, case=f"train amortised {case.removeprefix('train_')}".strip(), mode=mode_name,
                      batch=batches["train"], lazy_reg=lazy or None, images_per_s=round(rate, 2),
                      r1_vs_plain=round(r1_seconds / plain, 3) if lazy else None, schedule_images=images,
                      projected_gpu_days=round(images / rate / 86400, 2)))

    for mode_name in args.modes:
        one_mode(mode_name)  # its networks and optimisers are freed on return
        if device.type == "cuda":
            torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------ the reference
def reference_networks(path: Path, native: bool, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """The reference's CIFAR-10 generator and small discriminator, imported from ``path/score_sde``."""
    if native:  # its pure-PyTorch path instead of its JIT-built CUDA ops
        import torch.utils.cpp_extension as ext
        ext.load = lambda *a, **k: None
    sys.path.insert(0, str(path))
    from score_sde.models.discriminator import Discriminator_small
    from score_sde.models.ncsnpp_generator_adagn import NCSNpp
    G = NCSNpp(types.SimpleNamespace(**REF_CIFAR10)).to(device)
    D = Discriminator_small(nc=6, ngf=64, t_emb_dim=256, act=nn.LeakyReLU(0.2)).to(device)
    return G, D


def reference_cases(G: nn.Module, D: nn.Module, sample_batch: int, train_batch: int,
                    device: torch.device) -> dict[str, Callable[[], Any]]:
    """The reference's sampling (NFE 4) and its training iteration as its training script runs it, plain and
    with R1. The cost is in the networks; the diffusion arithmetic around them is simplified."""
    opt_g, opt_d = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())

    @torch.no_grad()
    def sample_ref() -> torch.Tensor:
        x = torch.randn(sample_batch, 3, 32, 32, device=device)
        for i in reversed(range(4)):
            x = G(x, torch.full((sample_batch,), i, device=device), torch.randn(sample_batch, 100, device=device))
        return x

    def train_ref(r1: bool) -> None:
        B = train_batch
        t = torch.randint(0, 4, (B,), device=device)
        x_t = torch.randn(B, 3, 32, 32, device=device, requires_grad=True)  # always, as the reference does
        x_tp1 = torch.randn(B, 3, 32, 32, device=device)
        D.zero_grad()
        d_real = D(x_t, t, x_tp1)
        F.softplus(-d_real).mean().backward(retain_graph=r1)
        if r1:
            (grad,) = torch.autograd.grad(d_real.sum(), x_t, create_graph=True)
            (REF_R1_GAMMA / 2 * grad.square().flatten(1).sum(1).mean()).backward()
        x0 = G(x_tp1, t, torch.randn(B, 100, device=device))  # with grad: the reference's generator backward
        F.softplus(D(0.5 * x0 + 0.5 * x_tp1, t, x_tp1)).mean().backward()
        opt_d.step()
        D.requires_grad_(False)
        G.zero_grad()
        x0 = G(x_tp1, t, torch.randn(B, 100, device=device))
        F.softplus(-D(0.5 * x0 + 0.5 * x_tp1, t, x_tp1)).mean().backward()
        opt_g.step()
        D.requires_grad_(True)

    return {"sample": sample_ref, "train": lambda: train_ref(False), "train_r1": lambda: train_ref(True)}


def run_reference(args: argparse.Namespace, clock: Clock, matmul: dict[str, float],
                  emit: Callable[[dict], None]) -> dict[str, float]:
    """Images/s of the reference's cases; ``train amortised``: lazy R1 every 15 steps."""
    device = clock.device
    G, D = reference_networks(args.reference, args.reference_native, device)
    sample_batch = args.sample_batch or RECIPES["cifar10_ddgan"]
    train_batch = args.train_batch or build(load("cifar10_ddgan", False), dry_run=True).micro_batch
    cases, rates, seconds = reference_cases(G, D, sample_batch, train_batch, device), {}, {}
    for case, fn in cases.items():
        if case.split("_")[0] not in args.cases:
            continue
        G.train(case != "sample")
        flops = count_flops(fn)
        seconds[case], peak = clock.time(fn)
        batch = sample_batch if case == "sample" else train_batch
        rates[case] = batch / seconds[case]
        emit(row("reference cifar10_ddgan", case, "fp32", batch, seconds[case], peak, flops, matmul,
                 cuda_ops=device.type == "cuda" and not args.reference_native))
    if "train" in seconds:
        amortised = ((REF_LAZY - 1) * seconds["train"] + seconds["train_r1"]) / REF_LAZY
        rates["train amortised"] = train_batch / amortised
        emit(dict(recipe="reference cifar10_ddgan", case="train amortised", mode="fp32",
                  batch=train_batch, lazy_reg=REF_LAZY, images_per_s=round(rates["train amortised"], 2),
                  r1_vs_plain=round(seconds["train_r1"] / seconds["train"], 3)))
    del G, D, cases
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rates


def vs_reference(result: dict, reference: dict[str, float]) -> float | None:
    """images/s of a CIFAR-10 DDGAN row over the reference's for the same case (R1 rows: its R1 step)."""
    if result["recipe"] != "cifar10_ddgan" or not reference:
        return None
    case = result["case"]
    key = "train amortised" if case.startswith("train amortised") else case.split(" ")[0]
    return round(result["images_per_s"] / reference[key], 3) if key in reference else None


# ----------------------------------------------------------------------------------------- report
def markdown(rows: list[dict], header: dict, command: str) -> str:
    lines = [f"## `{command}`", "", ", ".join(f"{k}: {v}" for k, v in header.items()), "",
             "| recipe | case | mode | batch | R1 batch | images/s | vs reference | R1 step / plain | peak MiB "
             "| GFLOP/image | TFLOP/s | of matmul | GPU-days of the schedule |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r["recipe"], r["case"], r["mode"], r["batch"], r.get("r1_batch"), r["images_per_s"],
                 r.get("vs_reference"), r.get("r1_vs_plain"), r.get("peak_MiB"), r.get("gflop_per_image"),
                 r.get("tflops"), r.get("of_matmul"), r.get("projected_gpu_days")]
        lines.append("| " + " | ".join("" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--modes", nargs="+", choices=list(MODES),
                        help="default: fp32 bf16 bf16_cl_compile (--tiny: fp32 bf16_cl, no compile)")
    parser.add_argument("--cases", nargs="+", default=["sample", "train"], choices=["sample", "train"])
    parser.add_argument("--r1-fractions", type=float, nargs="+", default=[1.0, 0.25],
                        help="r1_batch_fraction of the R1 steps timed (recipes with R1)")
    parser.add_argument("--sample-batch", type=int, default=0, help="0: the recipe's (500, or 100 at 64 px)")
    parser.add_argument("--train-batch", type=int, default=0, help="0: the recipe's per-pass batch on one H100")
    parser.add_argument("--compile-mode", default=None,
                        help="torch.compile mode (default, reduce-overhead, max-autotune-no-cudagraphs, ...)")
    parser.add_argument("--compile-backend", default="inductor",
                        help="torch.compile backend (aot_eager: a quick check of the compiled paths, no codegen)")
    parser.add_argument("--tf32", action="store_true", help="TF32 matmuls and convolutions in float32")
    parser.add_argument("--cudnn-benchmark", action="store_true")
    parser.add_argument("--reference", type=Path, help="directory holding the DDGAN reference's score_sde/")
    parser.add_argument("--reference-native", action="store_true", help="the reference's pure-PyTorch ops")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny networks at 16 x 16 px: a smoke run, not a benchmark")
    parser.add_argument("--out", type=Path, help="write the markdown report here")
    parser.add_argument("--append", action="store_true", help="append the report to --out as a new section")
    args = parser.parse_args()
    if args.tiny:
        args.warmup, args.repeats = min(args.warmup, 1), min(args.repeats, 2)
    args.modes = args.modes or (["fp32", "bf16_cl"] if args.tiny else ["fp32", "bf16", "bf16_cl_compile"])
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here; use --device cpu --tiny for a smoke run")
    if args.reference and device.type != "cuda" and not args.reference_native:
        parser.error("--reference on the CPU needs --reference-native (its own ops build for CUDA only)")
    if args.compile_mode == "default":
        args.compile_mode = None
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    clock = Clock(device, args.warmup, args.repeats)
    n = 512 if args.tiny or device.type == "cpu" else 8192
    matmul = {"fp32": clock.matmul_tflops(torch.float32, n), "bf16": clock.matmul_tflops(torch.bfloat16, n)}
    header = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else
              f"CPU ({os.cpu_count()} cores, {platform.machine()})",
              "torch": torch.__version__, "CUDA": torch.version.cuda, "date": datetime.date.today().isoformat(),
              "matmul TFLOP/s": {k: round(v, 2) for k, v in matmul.items()}, "tiny": args.tiny,
              "tf32": args.tf32, "cudnn.benchmark": args.cudnn_benchmark,
              "compile": f"{args.compile_backend}, mode {args.compile_mode or 'default'}",
              "warm-up + repeats": f"{args.warmup} + {args.repeats}"}
    print(json.dumps(header), flush=True)
    rows: list[dict] = []
    reference: dict[str, float] = {}

    def emit(result: dict) -> None:
        ratio = vs_reference(result, reference)
        if ratio is not None:
            result["vs_reference"] = ratio
        rows.append(result)
        print(json.dumps(result), flush=True)

    if args.reference:
        reference.update(run_reference(args, clock, matmul, emit))
    for recipe in args.recipes:
        run_recipe(recipe, args, clock, matmul, emit)
    report = markdown(rows, header, "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]))
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        title = "# GPU speed (written by benchmarks/gpu_speed.py)\n\n"
        args.out.write_text((args.out.read_text() + "\n" if args.append and args.out.exists() else title) + report)


if __name__ == "__main__":
    main()
