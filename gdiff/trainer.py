"""The training loop: recipe -> built objects -> D step / G step -> EMA -> logs and checkpoints.

Accelerate is the engine (one CPU process, DDP over many GPUs or nodes, bf16 / fp16 with loss scaling,
torch.compile). The Trainer never knows which objective or data set it runs: it asks the objective for a
D-step and a G-step loss, the batch stream (gdiff/data/stream.py) for batches, gdiff.eval for metrics and the
run directory (gdiff/rundir.py) to write things down. Per iteration, each network has one backward pass per
micro-batch:

    D step: objective.discriminator_loss (fakes under no_grad) -> backward -> Adam(D)
    G step: D frozen (requires_grad False, no DDP sync) -> objective.generator_loss -> backward -> Adam(G)
    EMA of G.

Loss parts stay on the device and are read only at log and checkpoint steps (no host synchronisation
inside the step).
"""

from __future__ import annotations

import contextlib
import json
import pickle
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import TorchDynamoPlugin, broadcast_object_list, set_seed
from safetensors import SafetensorError
from timm.utils import ModelEmaV3

from gdiff import checkpoints, lr_schedule, recipes
from gdiff.build import build
from gdiff.checkpoints import RunError
from gdiff.data.stream import BatchStream
from gdiff.interrupt import StopOnSignal
from gdiff.loss_meter import LossMeter, flat_scalars
from gdiff.monitor import EMAMonitor
from gdiff.progress import Progress
from gdiff.rundir import RunDir

EMA_FILE, STATE_FILE = "ema.safetensors", "trainer_state.json"


class Trainer:
    """Train a diffusion GAN described by ``recipe`` into ``run_dir`` (resuming from its last checkpoint).

    The constructor builds everything through :func:`gdiff.build.build`, which runs every configuration check
    and raises ValueError / FileNotFoundError before anything is written.
    """

    def __init__(self, recipe: recipes.Recipe, run_dir: str | Path, accelerator: Accelerator | None = None) -> None:
        self.recipe, cfg = recipe, recipe.train
        dynamo = TorchDynamoPlugin(backend="no" if cfg.compile == "no" else "inductor",
                                   mode=None if cfg.compile in ("no", "default") else cfg.compile)
        self.accelerator = acc = accelerator or Accelerator(
            mixed_precision=cfg.mixed_precision, log_with=cfg.trackers or None, project_dir=str(run_dir),
            dynamo_plugin=dynamo)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        set_seed(cfg.seed)
        built = build(recipe, acc.num_processes)
        self.data, self.schedule, self.objective = built.data, built.schedule, built.objective
        self.micro_batch = built.micro_batch
        G, D = built.generator, built.discriminator
        fmt = torch.channels_last if cfg.channels_last and len(built.data_shape) == 3 else torch.preserve_format
        G, D = G.to(memory_format=fmt), None if D is None else D.to(memory_format=fmt)
        self._G = G  # the plain module (parameters shared with the prepared one): what the EMA follows
        self.ema = ModelEmaV3(G, decay=cfg.ema_decay, use_warmup=cfg.ema_warmup).requires_grad_(False)
        opt = recipe.optim
        fused = {"fused": True} if acc.device.type == "cuda" else {}
        adam = {"betas": opt.betas, "weight_decay": opt.weight_decay, **fused}
        self.opt_g = torch.optim.Adam(G.parameters(), lr=opt.lr_g, **adam)
        if D is None:
            self.G, self.opt_g = acc.prepare(G, self.opt_g)
            self.D = self.opt_d = None
        else:
            self.opt_d = torch.optim.Adam(D.parameters(), lr=opt.lr_d, **adam)
            self.G, self.D, self.opt_g, self.opt_d = acc.prepare(G, D, self.opt_g, self.opt_d)
        self._D_eager = getattr(self.D, "_orig_mod", self.D)  # R1 steps need double backward: no compile
        self.ema.to(acc.device)
        set_seed(cfg.seed, device_specific=True)  # same initial weights everywhere, different noise per rank
        self.step = 0
        self.stream = BatchStream(self.data, built.local_batch, seed=cfg.seed, rank=acc.process_index,
                                  world=acc.num_processes, device=acc.device, num_workers=cfg.num_workers,
                                  channels_last=cfg.channels_last)
        self.run_dir = RunDir(run_dir, acc.is_main_process)
        self.run_dir.check(recipe)  # against the recipes the run holds (RunError naming the keys); reads only
        self.monitor = EMAMonitor(self.ema.module, built.generator_config(), self.data, recipe.eval, self.run_dir,
                                  acc.device, acc.process_index, acc.num_processes)

    # ---------------------------------------------------------------------------------------- state
    def _on_main(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` run by the main process; its result, or its RunError, on every process."""
        result: list[Any] = [None, None]
        if self.accelerator.is_main_process:
            try:
                result = [fn(), None]
            except RunError as err:
                result = [None, str(err)]
        value, error = broadcast_object_list(result)
        if error is not None:
            raise RunError(error)
        return value

    def resume(self) -> bool:
        """Load the newest intact checkpoint of the run directory, if any (:func:`checkpoints.select`: damaged
        ones are skipped with a warning, RunError if none is intact). Returns whether one was loaded."""
        found = self._on_main(lambda: checkpoints.select(self.run_dir.path, self.accelerator.num_processes))
        if found is None:
            return False
        try:  # Accelerate reads its .bin/.pkl files with torch.load(weights_only=True): no code runs
            self.accelerator.load_state(str(found))
        except (pickle.UnpicklingError, RuntimeError, KeyError, OSError, SafetensorError) as err:
            raise RunError(f"checkpoint {found} cannot be loaded into this run's networks: "
                           f"{checkpoints.load_error(err)}") from None
        self.ema.module.load_state_dict(checkpoints.load_tensors(found / EMA_FILE, str(self.accelerator.device)))
        state = json.loads((found / STATE_FILE).read_text())
        self.step = int(state["step"])
        self.stream.load_state_dict(state["stream"])
        self.monitor.best.value = state.get("best")
        self.accelerator.print(f"resumed from {found} (step {self.step})")
        return True

    def save(self) -> None:
        """Checkpoint the full training state and export the EMA generator to RUN/generator/ (atomically)."""
        acc, root = self.accelerator, self.run_dir.path
        staged = checkpoints.staging_dir(root, self.step, create=acc.is_main_process)
        acc.wait_for_everyone()
        acc.save_state(str(staged))  # every process writes its RNG state
        if acc.is_main_process:
            checkpoints.save_tensors_atomically(self.ema.module.state_dict(), staged / EMA_FILE)
            state = {"step": self.step, "stream": self.stream.state_dict(), "best": self.monitor.best.value}
            (staged / STATE_FILE).write_text(json.dumps(state))
            checkpoints.write_recipe(staged, self.recipe)
        acc.wait_for_everyone()
        if acc.is_main_process:
            checkpoints.commit(staged, self.recipe.train.keep_checkpoints)
        self.monitor.export()
        acc.wait_for_everyone()

    # --------------------------------------------------------------------------------------- loop
    def _set_learning_rates(self) -> None:
        opt, max_steps = self.recipe.optim, self.recipe.train.max_steps
        for optimizer, base in ((self.opt_g, opt.lr_g), (self.opt_d, opt.lr_d)):
            if optimizer is None:
                continue
            lr = lr_schedule.learning_rate(base, self.step, max_steps, opt.lr_decay, opt.decay_start, opt.lr_min)
            for group in optimizer.param_groups:
                group["lr"] = lr

    def _accumulate(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn, x0: torch.Tensor,
                    labels: torch.Tensor | None, meter: LossMeter) -> None:
        """Zero grads, backward ``loss_fn(x, labels)`` over the micro-batches (DDP sync on the last), step."""
        acc = self.accelerator
        optimizer.zero_grad(set_to_none=True)
        chunks = x0.split(self.micro_batch)
        label_chunks = labels.split(self.micro_batch) if labels is not None else [None] * len(chunks)
        for i, (x, y) in enumerate(zip(chunks, label_chunks, strict=True)):
            sync = contextlib.nullcontext() if i == len(chunks) - 1 else acc.no_sync(model)
            with sync, acc.autocast():
                losses = loss_fn(x, y)
            acc.backward(losses.total / len(chunks))
            meter.add(losses.parts)
        optimizer.step()

    def train_step(self, x0: torch.Tensor, labels: torch.Tensor | None, meter: LossMeter | None = None) -> LossMeter:
        """One D step and one G step on a per-process batch; loss parts are added to ``meter`` (on device)."""
        meter = meter or LossMeter()
        step, obj = self.step, self.objective
        self._set_learning_rates()
        if self.D is not None and obj.trains_discriminator:
            self._accumulate(self.D, self.opt_d, lambda x, y: obj.discriminator_loss(
                self.G, self.D, self.schedule, x, y, step, D_eager=self._D_eager), x0, labels, meter)
        if self.D is not None:
            self.D.requires_grad_(False)
        with contextlib.nullcontext() if self.D is None else self.accelerator.no_sync(self.D):
            self._accumulate(self.G, self.opt_g, lambda x, y: obj.generator_loss(self.G, self.D, self.schedule, x,
                                                                                y, step), x0, labels, meter)
        if self.D is not None:
            self.D.requires_grad_(True)
        self.ema.update(self._G, step=step)
        return meter

    def train(self) -> signal.Signals | None:
        """Run to ``train.max_steps``, resuming first; logs, pictures, evaluations, checkpoints. The main process
        holds the run directory's lock throughout (RunError if another trainer has it). On SIGTERM / SIGINT
        every rank finishes its step, a checkpoint is saved and the signal this process got is returned."""
        try:
            self._on_main(lambda: (self.run_dir.lock(), self.run_dir.check(self.recipe)))
            with StopOnSignal(self.accelerator, every=self.recipe.train.log_every) as stop:
                self._loop(stop)
            return stop.received
        finally:
            self.run_dir.unlock()

    def _loop(self, stop: StopOnSignal) -> None:
        acc, cfg = self.accelerator, self.recipe.train
        self.resume()  # before recipe.yaml is written: a run whose checkpoints are all damaged stays as it was
        self._on_main(lambda: self.run_dir.prepare(self.recipe))
        self.run_dir.record_start(step=self.step, world_size=acc.num_processes, device=str(acc.device),
                                  mixed_precision=cfg.mixed_precision, compile=cfg.compile,
                                  data=self.data.describe())
        acc.init_trackers("gdiff", config=flat_scalars(self.recipe.to_dict()))
        self.progress = progress = Progress(acc, self.run_dir, self.step, cfg.max_steps, cfg.batch_size,
                                            cfg.log_every, f"{self.objective.name} T={self.schedule.num_steps}")
        while self.step < cfg.max_steps:
            self.train_step(*next(self.stream), progress.meter)
            self.step += 1
            stopping = stop.requested(self.step)  # several processes: collective at log steps, all stop there
            step, last = self.step, self.step == cfg.max_steps
            checkpoint = last or stopping or bool(cfg.checkpoint_every) and step % cfg.checkpoint_every == 0
            progress.step(step, force=checkpoint)
            if cfg.sample_every and step % cfg.sample_every == 0 and not (last or stopping):
                self.save_samples()
            if self.recipe.eval.every and step % self.recipe.eval.every == 0 and not (last or stopping):
                progress.log({"step": step, **{f"eval/{k}": v for k, v in self.monitor.evaluate(step).items()}})
            if last:
                self.evaluate()  # before the last checkpoint, which then holds the best metric so far
            if checkpoint:
                self.save()
            if stopping:
                acc.print(f"\nstopped by a signal after step {step}; checkpoint saved: the same command resumes")
                break
        progress.close()
        acc.end_training()

    # ----------------------------------------------------------------------------------- evaluation
    def sample(self, num: int, steps: int | None = None, seed: int = 0) -> torch.Tensor:
        """``num`` samples of the EMA generator in data space [num, *data_shape] (float32, CPU), drawn as
        ``gdiff.load_generator(RUN).sample(num, steps=steps, seed=seed)`` would."""
        return self.monitor.generator.sample(num, steps=steps, seed=seed, batch_size=self.recipe.eval.batch_size)

    def save_samples(self) -> Path | None:
        """A picture of EMA samples from fixed noise into samples/ and the image trackers."""
        return self.monitor.picture(self.step, f"{self.objective.name}, step {self.step}", self.recipe.train.seed,
                                    self.accelerator.trackers)

    def evaluate(self) -> dict[str, Any]:
        """Final metrics (and a picture) of EMA samples into the run directory's metrics.json."""
        result: dict[str, Any] = {"step": self.step, "num_samples": self.recipe.eval.num_samples,
                                  **self.monitor.evaluate(self.step)}
        self.save_samples()
        if self.accelerator.is_main_process:
            self.run_dir.write_metrics(result)
            self.accelerator.print(json.dumps(result))
        return result
