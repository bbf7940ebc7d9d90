"""Latent against pixel space: digits quality at equal training wall-clock, and training / sampling speed.

    python benchmarks/latent.py quality [--seconds 300] [--num 2000]     # digits_siddm vs digits_latent_siddm
    python benchmarks/latent.py speed [--batch 8]                         # digits and CIFAR-10-sized networks

``quality`` trains each recipe in-process through ``gdiff.Trainer`` (its own steps, batch stream and EMA) until
``--seconds`` of training wall-clock have passed, then scores ``--num`` EMA samples with benchmarks/digits.py's
independent SVM (class shares, total variation to the real class shares, share with p > 0.9). The latent recipe
needs gdiff's digits autoencoder (python -m gdiff.autoencoders.train recipes/autoencoders/autoencoder_digits.yaml).

``speed`` times, for each (pixel recipe, latent recipe) pair, one training iteration (D step + G step with Adam,
R1 off, random data in the recipe's data shape), the reverse chain (generator) and the decoder separately, and
counts FLOPs per sample (torch.utils.flop_counter, forward only) of the chain and the decoder. The CIFAR-10
latent pair uses a randomly initialised autoencoder of recipes/autoencoders/autoencoder_cifar10.yaml's size.
Prints JSON lines; benchmarks/results/latent.md holds the measured tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def quality(seconds: float, num: int, recipes_: list[str], threads: int) -> None:
    import digits as digits_bench

    from gdiff import recipes
    from gdiff.trainer import Trainer

    svm, accuracy, confident_real = digits_bench.classifier()
    print(json.dumps({"svm_cv_accuracy": accuracy, "real_confident": confident_real}), flush=True)
    autoencoder = ROOT / "runs" / "autoencoder_digits" / "autoencoder"
    if autoencoder.is_dir():  # the ceiling of the latent runs: the real digits through the autoencoder
        from gdiff import data

        source = data.build({"type": "digits", "transform": {"type": "latent", "autoencoder": str(autoencoder)}})
        rec = source.to_data(source.to_model(source.raw))
        print(json.dumps({"recipe": "real digits through the autoencoder", **digits_bench.score(rec.numpy(), svm)}),
              flush=True)
    for name in recipes_:
        recipe = recipes.load(ROOT / "recipes" / f"{name}.yaml", [f"train.threads={threads}", "train.trackers=[]"])
        trainer = Trainer(recipe, Path("/tmp/gdiff_latent_bench") / name)
        start, steps = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            trainer.train_step(*next(trainer.stream))
            trainer.step += 1
            steps += 1
        elapsed = time.perf_counter() - start
        t0 = time.perf_counter()
        samples = trainer.sample(num)
        sample_s = time.perf_counter() - t0
        result = {"recipe": name, "train_seconds": round(elapsed, 1), "steps": steps,
                  "it_per_s": round(steps / elapsed, 2), "sample_images_per_s": round(num / sample_s, 1),
                  **digits_bench.score(samples.numpy(), svm)}
        print(json.dumps(result), flush=True)


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def speed_case(recipe_name: str, batch: int, repeats: int, autoencoder: Path | None) -> dict:
    from gdiff import nets, objectives, recipes
    from gdiff.autoencoders import load
    from gdiff.processes import Schedule
    from gdiff.sampling import sample

    overrides = [] if autoencoder is None else [f"data.transform.autoencoder={autoencoder}"]
    recipe = recipes.load(ROOT / "recipes" / f"{recipe_name}.yaml", overrides)
    transform = recipe.data.get("transform") or {}
    shape = tuple(transform["latent_shape"]) if transform else None
    if shape is None:
        from gdiff.build import build

        shape = build(recipe, dry_run=True).data_shape
    G = nets.build(recipe.generator, shape, 0, "generator")
    D = nets.build(recipe.discriminator, shape, 0, "discriminator")
    schedule, objective = Schedule.from_config(recipe.diffusion), objectives.from_config(recipe.objective)
    opt_g, opt_d = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    x0 = torch.randn(batch, *shape)
    lazy = next((t.lazy_reg for t in objective.terms if hasattr(t, "lazy_reg")), 1)

    def iteration() -> None:
        opt_d.zero_grad()
        objective.discriminator_loss(G, D, schedule, x0, step=1 if lazy > 1 else 0).total.backward()
        opt_d.step()
        D.requires_grad_(False)
        opt_g.zero_grad()
        objective.generator_loss(G, D, schedule, x0, step=1).total.backward()
        opt_g.step()
        D.requires_grad_(True)

    G.eval()
    x_T = torch.randn(batch, *shape)
    chain = _time(lambda: sample(G, schedule, x_T), repeats)
    out = {"recipe": recipe_name, "model_shape": list(shape), "batch": batch,
           "train_it_per_s": round(1 / _time(iteration, repeats), 3),
           "generator_images_per_s": round(batch / chain, 1)}
    with FlopCounterMode(display=False) as flops:
        sample(G, schedule, x_T[:1])
    out["generator_gflop_per_sample"] = round(flops.get_total_flops() / 1e9, 4)
    if transform:
        vae = load(autoencoder)
        x = torch.randn(batch, *shape)
        decode = _time(lambda: vae.decode(x), repeats)
        with FlopCounterMode(display=False) as flops:
            vae.decode(x[:1])
        out.update(decoder_images_per_s=round(batch / decode, 1),
                   decoder_gflop_per_sample=round(flops.get_total_flops() / 1e9, 4),
                   images_per_s_with_decoder=round(batch / (chain + decode), 1))
    return out


def speed(batch: int, repeats: int, threads: int) -> None:
    import tempfile

    import diffusers

    from gdiff.autoencoders.train import load_recipe

    torch.manual_seed(0)
    digits_ae = ROOT / "runs" / "autoencoder_digits" / "autoencoder"
    arch = load_recipe(ROOT / "recipes" / "autoencoders" / "autoencoder_cifar10.yaml", ["data={type: digits}"])
    cifar_ae = Path(tempfile.mkdtemp()) / "ae"
    a = arch.autoencoder
    diffusers.AutoencoderKL(in_channels=3, out_channels=3, sample_size=32,
                            down_block_types=("DownEncoderBlock2D",) * len(a.block_out_channels),
                            up_block_types=("UpDecoderBlock2D",) * len(a.block_out_channels),
                            block_out_channels=a.block_out_channels, latent_channels=a.latent_channels,
                            layers_per_block=a.layers_per_block, norm_num_groups=a.norm_num_groups,
                            mid_block_add_attention=a.mid_block_add_attention).save_pretrained(cifar_ae)
    torch.set_num_threads(threads)
    for name, ae in (("digits_siddm", None), ("digits_latent_siddm", digits_ae),
                     ("cifar10_ddgan", None), ("cifar10_lddgan", cifar_ae)):
        print(json.dumps(speed_case(name, batch, repeats, ae)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["quality", "speed"])
    parser.add_argument("--seconds", type=float, default=300.0, help="training wall-clock per recipe (quality)")
    parser.add_argument("--num", type=int, default=2000, help="samples scored (quality)")
    parser.add_argument("--recipes", nargs="+", default=["digits_siddm", "digits_latent_siddm"])
    parser.add_argument("--batch", type=int, default=8, help="batch of the speed cases")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.what == "quality":
        quality(args.seconds, args.num, args.recipes, args.threads)
    else:
        speed(args.batch, args.repeats, args.threads)


if __name__ == "__main__":
    main()
