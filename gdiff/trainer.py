"""The training loop: recipe -> built objects -> D step / G step -> EMA -> logs and checkpoints.

Accelerate is the engine (one CPU process, DDP over many GPUs or nodes, mixed precision). The Trainer never
knows which objective it runs: it asks the objective for a D-step loss and a G-step loss and steps the
matching optimiser. Per iteration, each network has exactly one backward pass:

    D step: objective.discriminator_loss (fakes under no_grad) -> backward -> Adam(D)
    G step: D frozen (requires_grad False, no DDP sync) -> objective.generator_loss -> backward -> Adam(G)
    EMA of G.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import set_seed
from timm.utils import ModelEmaV3
from tqdm.auto import tqdm

from gdiff import checkpoints, data, lr_schedule, nets, objectives, recipes
from gdiff.diffusion import Schedule
from gdiff.sampling import sample


class _Step:
    """The step counter, registered with Accelerate so that save_state / load_state carry it."""

    def __init__(self) -> None:
        self.value = 0

    def state_dict(self) -> dict[str, int]:
        return {"step": self.value}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.value = int(state["step"])


class Trainer:
    """Train a diffusion GAN described by ``recipe`` into ``run_dir`` (resuming from its last checkpoint)."""

    def __init__(self, recipe: recipes.Recipe, run_dir: str | Path, accelerator: Accelerator | None = None) -> None:
        self.recipe, self.run_dir = recipe, Path(run_dir)
        cfg = recipe.train
        if cfg.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"train.mixed_precision must be no, bf16 or fp16, got {cfg.mixed_precision!r}")
        self.accelerator = accelerator or Accelerator(mixed_precision=cfg.mixed_precision,
                                                      log_with=cfg.trackers or None, project_dir=str(run_dir))
        acc = self.accelerator
        if cfg.batch_size % acc.num_processes:
            raise ValueError(f"train.batch_size={cfg.batch_size} must be divisible by the number of processes "
                             f"({acc.num_processes})")
        self.local_batch = cfg.batch_size // acc.num_processes
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        set_seed(cfg.seed)

        self.data = data.build(recipe.data)
        self.schedule = Schedule.from_config(recipe.diffusion)
        self.objective = objectives.from_config(recipe.objective)
        G = nets.build(recipe.generator, self.data.data_shape, self.data.num_classes, "generator")
        D = nets.build(recipe.discriminator, self.data.data_shape, self.data.num_classes, "discriminator")
        self.objective.check(D)
        self.ema = ModelEmaV3(G, decay=cfg.ema_decay, use_warmup=cfg.ema_warmup)
        self.ema.requires_grad_(False)
        opt = recipe.optim
        lr_schedule.check(opt.lr_decay, opt.decay_start, opt.lr_min, (opt.lr_g, opt.lr_d))
        opt_g = torch.optim.Adam(G.parameters(), lr=opt.lr_g, betas=opt.betas, weight_decay=opt.weight_decay)
        opt_d = torch.optim.Adam(D.parameters(), lr=opt.lr_d, betas=opt.betas, weight_decay=opt.weight_decay)
        self.G, self.D, self.opt_g, self.opt_d = acc.prepare(G, D, opt_g, opt_d)
        self.ema.to(acc.device)
        set_seed(cfg.seed, device_specific=True)  # same initial weights everywhere, different noise per rank
        self.step = _Step()
        acc.register_for_checkpointing(self.ema, self.step)
        self.x = self.data.x.to(acc.device)
        self.labels = None if self.data.labels is None else self.data.labels.to(acc.device)

    # ---------------------------------------------------------------------------------------- state
    def _write_recipe(self) -> None:
        path = self.run_dir / "recipe.yaml"
        if path.exists():
            changed = recipes.load(path).differences(self.recipe)
            if changed:
                raise ValueError(f"{path} holds a different recipe (differs in {', '.join(changed)}); resume "
                                 f"with the same recipe or use a new --run-dir")
        path.write_text(yaml.safe_dump(self.recipe.to_dict(), sort_keys=False))

    def resume(self) -> bool:
        """Load the newest checkpoint of the run directory, if any. Returns whether one was loaded."""
        found = checkpoints.latest(self.run_dir)
        if found is None:
            return False
        self.accelerator.load_state(str(found))
        self.accelerator.print(f"resumed from {found} (step {self.step.value})")
        return True

    def save(self) -> None:
        """Checkpoint the full training state and export the EMA generator (main process writes)."""
        acc = self.accelerator
        acc.wait_for_everyone()
        if acc.is_main_process:
            checkpoints.save_atomically(self.run_dir, self.step.value, lambda d: acc.save_state(str(d)),
                                        self.recipe.train.keep_checkpoints)
            checkpoints.save_tensors_atomically(self.ema.module.state_dict(),
                                                self.run_dir / "generator_ema.safetensors")
        acc.wait_for_everyone()

    # --------------------------------------------------------------------------------------- loop
    def _batch(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = torch.randint(0, self.x.shape[0], (self.local_batch,), generator=gen).to(self.x.device)
        return self.x[idx], None if self.labels is None else self.labels[idx]

    def _set_learning_rates(self) -> None:
        opt, max_steps = self.recipe.optim, self.recipe.train.max_steps
        for optimizer, base in ((self.opt_g, opt.lr_g), (self.opt_d, opt.lr_d)):
            lr = lr_schedule.learning_rate(base, self.step.value, max_steps, opt.lr_decay, opt.decay_start,
                                           opt.lr_min)
            for group in optimizer.param_groups:
                group["lr"] = lr

    def train_step(self, x0: torch.Tensor, labels: torch.Tensor | None) -> dict[str, float]:
        """One D step and one G step; returns the loss parts as floats."""
        acc, step = self.accelerator, self.step.value
        self._set_learning_rates()
        parts: dict[str, torch.Tensor] = {}
        if self.objective.trains_discriminator:
            with acc.autocast():
                d = self.objective.discriminator_loss(self.G, self.D, self.schedule, x0, labels, step)
            self.opt_d.zero_grad(set_to_none=True)
            acc.backward(d.total)
            self.opt_d.step()
            parts.update(d.parts)
        self.D.requires_grad_(False)
        with acc.no_sync(self.D), acc.autocast():
            g = self.objective.generator_loss(self.G, self.D, self.schedule, x0, labels, step)
        self.opt_g.zero_grad(set_to_none=True)
        acc.backward(g.total)
        self.opt_g.step()
        self.D.requires_grad_(True)
        self.ema.update(acc.unwrap_model(self.G), step=step)
        parts.update(g.parts)
        return {k: float(v) for k, v in parts.items()}

    def train(self) -> None:
        """Run to ``train.max_steps``, resuming first; logs to ``log.jsonl``, checkpoints, then evaluates."""
        acc, cfg = self.accelerator, self.recipe.train
        if acc.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._write_recipe()
        acc.wait_for_everyone()
        self.resume()
        acc.init_trackers("gdiff")
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + acc.process_index * 7919 + self.step.value)
        log_path = self.run_dir / "log.jsonl"
        bar = tqdm(total=cfg.max_steps, initial=self.step.value, disable=not acc.is_main_process,
                   desc=f"{self.objective.name} T={self.schedule.num_steps}", dynamic_ncols=True)
        start = time.perf_counter()
        while self.step.value < cfg.max_steps:
            parts = self.train_step(*self._batch(gen))
            self.step.value += 1
            bar.update(1)
            if not all(math.isfinite(v) for v in parts.values()):
                self.save()
                raise FloatingPointError(f"non-finite loss at step {self.step.value}: {parts}")
            every = self.recipe.eval.every
            evaluated = bool(every) and self.step.value % every == 0 and self.step.value < cfg.max_steps
            if evaluated:
                parts.update({f"eval/{k}": v for k, v in self.metrics().items()})
            if self.step.value % cfg.log_every == 0 or self.step.value == cfg.max_steps or evaluated:
                record = {"step": self.step.value, "time": time.perf_counter() - start, **parts}
                acc.log(parts, step=self.step.value)
                bar.set_postfix({k: f"{v:.3f}" for k, v in parts.items() if k.endswith("total")})
                if acc.is_main_process:
                    with log_path.open("a") as f:
                        f.write(json.dumps(record) + "\n")
            if cfg.checkpoint_every and self.step.value % cfg.checkpoint_every == 0:
                self.save()
        bar.close()
        self.save()
        if acc.is_main_process:
            self.evaluate()
        acc.end_training()

    # ----------------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def sample(self, num: int, steps: int | None = None, seed: int = 0) -> torch.Tensor:
        """``num`` samples of the EMA generator, in data space [num, *data_shape] (float32, on the CPU)."""
        gen = torch.Generator(device=self.accelerator.device).manual_seed(seed)
        G = self.ema.module.eval()
        out = []
        for lo in range(0, num, self.recipe.eval.batch_size):
            n = min(self.recipe.eval.batch_size, num - lo)
            x_T = torch.randn(n, *self.data.data_shape, generator=gen, device=self.accelerator.device)
            out.append(self.data.to_data(sample(G, self.schedule, x_T, steps=steps, generator=gen)).float().cpu())
        return torch.cat(out)

    def metrics(self, samples: torch.Tensor | None = None) -> dict[str, float]:
        """The data's metrics (mixtures: Frechet, modes, ...) of ``eval.num_samples`` EMA samples; {} if none."""
        if self.data.centres is None:
            return {}
        from gdiff.metrics.mixture import mixture_metrics

        samples = self.sample(self.recipe.eval.num_samples) if samples is None else samples
        return mixture_metrics(samples, self.data.to_data(self.data.x), self.data.centres, self.data.mode_std)

    def evaluate(self) -> dict[str, Any]:
        """Metrics (and a scatter plot for 2-D data) of EMA samples, written to the run directory."""
        from gdiff.plots import scatter_samples

        samples = self.sample(self.recipe.eval.num_samples)
        real = self.data.to_data(self.data.x)
        result: dict[str, Any] = {"step": self.step.value, "num_samples": len(samples), **self.metrics(samples)}
        if samples.ndim == 2 and samples.shape[1] == 2:
            scatter_samples(real, samples, self.run_dir / "samples.png",
                            title=f"{self.objective.name}, T={self.schedule.num_steps}, step {self.step.value}")
        (self.run_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
        self.accelerator.print(json.dumps(result))
        return result
