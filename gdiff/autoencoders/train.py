"""``python -m gdiff.autoencoders.train RECIPE [key.path=value ...] [--run-dir DIR]``: gdiff's own KL autoencoder.

For data with no pretrained autoencoder (8x8 digits, CIFAR-10 at 16x16x4 as LDDGAN did). The model is a diffusers
``AutoencoderKL`` of the recipe's size; the loss per image (LDM's convention: sums over an image, so ``kl_weight``
1e-6 means what it means in LDM and LDDGAN):

    L = sum_pixels |x - D(z)|  (or squared: loss.reconstruction l2)  +  kl_weight * KL(q(z | x) || N(0, I))
        + adversarial_weight * P * (-mean_patches Dp(D(z)))   from step adversarial_start   (P: pixels per image)

with z ~ q(z | x) (reparameterised) and Dp the patch discriminator (gdiff/autoencoders/patch_gan.py, hinge
loss). LDM's LPIPS term is not included (it needs downloaded VGG weights). Recipe sections:

    data:        a gdiff data section (no transform)        -> gdiff.data.build
    autoencoder: block_out_channels, latent_channels, layers_per_block, norm_num_groups, mid_block_add_attention
    loss:        kl_weight, reconstruction (l1 | l2), adversarial_weight, adversarial_start, disc_channels, disc_layers
    optim:       lr, betas
    train:       max_steps, batch_size, seed, log_every, checkpoint_every, keep_checkpoints, threads,
                 mixed_precision, num_workers

Accelerate runs it; checkpoints (gdiff/checkpoints.py: networks, optimisers, RNG, data position) are atomic and a
rerun resumes exactly. The end of training exports ``RUN/autoencoder/`` (diffusers ``save_pretrained``: config.json
+ safetensors, written beside and renamed into place) with ``scaling_factor`` = 1 / std of the posterior means, so
``data.transform: {type: latent, autoencoder: RUN/autoencoder}`` gives unit-variance latents, and
``RUN/metrics.json`` (reconstruction MSE and PSNR of the posterior means in [-1, 1] model space).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from gdiff import checkpoints, recipes, sections
from gdiff.autoencoders.adapter import require_diffusers
from gdiff.autoencoders.patch_gan import hinge_d_loss, patch_discriminator
from gdiff.data.stream import BatchStream

STATE_FILE = "trainer_state.json"
EXPORT = "autoencoder"
STATS_EXAMPLES = 4096  # examples the exported scaling factor and the reconstruction metrics are measured on


@dataclass
class Architecture:
    """The size of the diffusers AutoencoderKL (one down and one up block per entry of block_out_channels)."""

    block_out_channels: tuple[int, ...] = (32, 64)
    latent_channels: int = 4
    layers_per_block: int = 1
    norm_num_groups: int = 16
    mid_block_add_attention: bool = True


@dataclass
class Loss:
    kl_weight: float = 1e-6
    reconstruction: Literal["l1", "l2"] = "l1"
    adversarial_weight: float = 0.0
    adversarial_start: int = 0
    disc_channels: int = 64
    disc_layers: int = 2


@dataclass
class Optim:
    lr: float = 4.5e-4
    betas: tuple[float, float] = (0.5, 0.9)


@dataclass
class Train:
    max_steps: int = 10_000
    batch_size: int = 64
    seed: int = 0
    log_every: int = 100
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    threads: int = 0
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    num_workers: int = 2


@dataclass
class AutoencoderRecipe:
    data: dict[str, Any]
    autoencoder: Architecture = field(default_factory=Architecture)
    loss: Loss = field(default_factory=Loss)
    optim: Optim = field(default_factory=Optim)
    train: Train = field(default_factory=Train)


def load_recipe(path: str | Path, overrides: list[str] = ()) -> AutoencoderRecipe:
    """Read a recipe (``extends`` and overrides as for diffusion-GAN recipes); errors name the key."""
    raw = recipes.apply_overrides(recipes.read(path), overrides)
    unknown = set(raw) - {"data", "autoencoder", "loss", "optim", "train"}
    if unknown:
        raise ValueError(f"{path}: unknown sections {sorted(unknown)} (autoencoder recipes have data, autoencoder, "
                         f"loss, optim, train)")
    if not isinstance(raw.get("data"), dict) or "transform" in raw["data"]:
        raise ValueError(f"{path}: the data section must be a gdiff data section without transform")
    built = {name: sections.call(cls, raw.get(name) or {}, name)
             for name, cls in (("autoencoder", Architecture), ("loss", Loss), ("optim", Optim), ("train", Train))}
    t, loss = built["train"], built["loss"]
    for key, value, low in (("train.max_steps", t.max_steps, 0), ("train.batch_size", t.batch_size, 1),
                            ("train.log_every", t.log_every, 1), ("train.keep_checkpoints", t.keep_checkpoints, 1),
                            ("loss.kl_weight", loss.kl_weight, 0),
                            ("loss.adversarial_weight", loss.adversarial_weight, 0),
                            ("optim.lr", built["optim"].lr, 1e-12)):
        if not value >= low:
            raise ValueError(f"{path}: recipe key {key} must be >= {low}, got {value!r}")
    return AutoencoderRecipe(data=raw["data"], **built)


class AutoencoderTrainer:
    """Builds everything in the constructor (errors before anything is written); :meth:`train` runs to the end."""

    def __init__(self, recipe: AutoencoderRecipe, run_dir: str | Path) -> None:
        from gdiff import data

        self.recipe, cfg = recipe, recipe.train
        self.run_dir = Path(run_dir)
        diffusers = require_diffusers("python -m gdiff.autoencoders.train")
        self.source = data.build(recipe.data)
        shape = tuple(self.source.data_shape)
        arch = recipe.autoencoder
        levels = len(arch.block_out_channels)
        if len(shape) != 3 or shape[1] % 2 ** (levels - 1) or shape[2] % 2 ** (levels - 1):
            raise ValueError(f"autoencoder.block_out_channels: {levels} levels downsample by {2 ** (levels - 1)}, "
                             f"which must divide the image sides; the data has shape {list(shape)}")
        if any(c % arch.norm_num_groups for c in arch.block_out_channels):
            raise ValueError(f"autoencoder.norm_num_groups ({arch.norm_num_groups}) must divide every entry of "
                             f"autoencoder.block_out_channels {list(arch.block_out_channels)}")
        self.acc = acc = Accelerator(mixed_precision=cfg.mixed_precision, project_dir=str(self.run_dir))
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        set_seed(cfg.seed)
        vae = diffusers.AutoencoderKL(
            in_channels=shape[0], out_channels=shape[0], down_block_types=("DownEncoderBlock2D",) * levels,
            up_block_types=("UpDecoderBlock2D",) * levels, sample_size=shape[1], **asdict(arch))
        self.vae = vae
        opt = recipe.optim
        self.opt = torch.optim.Adam(vae.parameters(), lr=opt.lr, betas=opt.betas)
        loss = recipe.loss
        self.disc = None
        if loss.adversarial_weight > 0:
            self.disc = patch_discriminator(shape[0], loss.disc_channels, loss.disc_layers)
            self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=opt.lr, betas=opt.betas)
            self.model, self.disc_p, self.opt, self.opt_d = acc.prepare(vae, self.disc, self.opt, self.opt_d)
        else:
            self.model, self.opt = acc.prepare(vae, self.opt)
        self.pixels = math.prod(shape)
        self.step = 0
        self.stream = BatchStream(self.source, cfg.batch_size // acc.num_processes, seed=cfg.seed,
                                  rank=acc.process_index, world=acc.num_processes, device=acc.device,
                                  num_workers=cfg.num_workers)

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        """One autoencoder step (and one patch-discriminator step once the adversarial term is on)."""
        loss_cfg, acc = self.recipe.loss, self.acc
        with acc.autocast():
            posterior = self.model.encode(x).latent_dist
            rec = self.model.decode(posterior.sample()).sample
            err = (x - rec).abs() if loss_cfg.reconstruction == "l1" else (x - rec).square()
            rec_loss = err.flatten(1).sum(1).mean()
            kl = posterior.kl().mean()
            total = rec_loss + loss_cfg.kl_weight * kl
            adversarial = self.disc is not None and self.step >= loss_cfg.adversarial_start
            if adversarial:
                self.disc_p.requires_grad_(False)
                total = total - loss_cfg.adversarial_weight * self.pixels * self.disc_p(rec).mean()
                self.disc_p.requires_grad_(True)
        self.opt.zero_grad(set_to_none=True)
        acc.backward(total)
        self.opt.step()
        parts = {"rec": rec_loss.detach(), "kl": kl.detach(), "total": total.detach()}
        if adversarial:
            with acc.autocast():
                d_loss = hinge_d_loss(self.disc_p(x), self.disc_p(rec.detach()))
            self.opt_d.zero_grad(set_to_none=True)
            acc.backward(d_loss)
            self.opt_d.step()
            parts["d"] = d_loss.detach()
        return parts

    # ------------------------------------------------------------------------------------------ state
    def resume(self) -> bool:
        found = checkpoints.latest(self.run_dir)
        if found is None:
            return False
        self.acc.load_state(str(found))
        state = json.loads((found / STATE_FILE).read_text())
        self.step = int(state["step"])
        self.stream.load_state_dict(state["stream"])
        self.acc.print(f"resumed from {found} (step {self.step})")
        return True

    def save(self) -> None:
        acc = self.acc
        staged = checkpoints.staging_dir(self.run_dir, self.step, create=acc.is_main_process)
        acc.wait_for_everyone()
        acc.save_state(str(staged))
        if acc.is_main_process:
            (staged / STATE_FILE).write_text(json.dumps({"step": self.step, "stream": self.stream.state_dict()}))
            checkpoints.commit(staged, self.recipe.train.keep_checkpoints)
        acc.wait_for_everyone()

    # ----------------------------------------------------------------------------------------- loop
    def train(self) -> dict[str, float]:
        cfg = self.recipe.train
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.resume()
        log = self.run_dir / "log.jsonl"
        sums: dict[str, torch.Tensor] = {}
        count = 0
        while self.step < cfg.max_steps:
            x, _ = next(self.stream)
            for k, v in self.train_step(x).items():
                sums[k] = sums.get(k, 0) + v
            count += 1
            self.step += 1
            last = self.step == cfg.max_steps
            if (self.step % cfg.log_every == 0 or last) and self.acc.is_main_process:
                with log.open("a") as f:
                    f.write(json.dumps({"step": self.step, **{k: float(v) / count for k, v in sums.items()}}) + "\n")
                sums, count = {}, 0
            if last or (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0):
                self.save()
        metrics = self.export() if self.acc.is_main_process else {}
        self.acc.wait_for_everyone()
        return metrics

    @torch.no_grad()
    def export(self) -> dict[str, float]:
        """Set ``scaling_factor`` from the latents' std, write RUN/autoencoder atomically and RUN/metrics.json."""
        vae = self.acc.unwrap_model(self.model).eval()
        n = min(len(self.source), STATS_EXAMPLES)
        raw = torch.stack([torch.as_tensor(self.source[i][0]) for i in range(n)]).to(self.acc.device)
        means, sq_err = [], 0.0
        for chunk in raw.split(256):
            x = self.source.to_model(chunk)
            mean = vae.encode(x).latent_dist.mean
            means.append(mean.float())
            sq_err += float((vae.decode(mean).sample.float().clamp(-1, 1) - x).square().sum())
        std = float(torch.cat(means).std())
        vae.register_to_config(scaling_factor=1 / std)
        mse = sq_err / (n * self.pixels)
        metrics = {"step": self.step, "examples": n, "latent_std": std, "scaling_factor": 1 / std,
                   "reconstruction_mse": mse, "psnr_db": 10 * math.log10(4 / mse) if mse > 0 else math.inf}
        final, tmp = self.run_dir / EXPORT, self.run_dir / f".tmp-{EXPORT}"
        shutil.rmtree(tmp, ignore_errors=True)
        vae.save_pretrained(tmp, safe_serialization=True)
        old = self.run_dir / f".old-{EXPORT}"
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        (self.run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
        vae.train()
        self.acc.print(json.dumps(metrics))
        return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gdiff.autoencoders.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", type=Path, help="YAML recipe, e.g. recipes/autoencoder_digits.yaml")
    parser.add_argument("overrides", nargs="*", help="recipe overrides such as train.max_steps=1000")
    parser.add_argument("--run-dir", type=Path, default=None, help="output directory (default runs/<recipe>)")
    args = parser.parse_args(argv)
    try:
        trainer = AutoencoderTrainer(load_recipe(args.recipe, args.overrides),
                                     args.run_dir or Path("runs") / args.recipe.stem)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    trainer.train()
    return 0


if __name__ == "__main__":
    sys.exit(main())
