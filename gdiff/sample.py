"""Sampling from an exported generator: ``python -m gdiff.sample RUN_DIR --num N --out OUT`` or from Python.

An exported generator is a directory with ``recipe.yaml`` and ``generator_ema.safetensors`` (every run directory
is one); nothing of the training state is read. ``OUT`` decides the format by its suffix:

    samples.npz     ``samples`` float32 [N, *data shape] in data space (+ ``labels`` int64 [N] if conditional)
    grid.png        one grid image (also .jpg, .webp); images only
    pngs/           a folder of lossless PNGs 000000.png, 000001.png, ... (any path without a suffix)

Sample i belongs to chunk i // batch_size, and chunk k is drawn from its own seed (``seed``, k): the samples do
not depend on how the chunks are spread over processes (``python -m gdiff.eval`` relies on it), only on
``--seed`` and ``--batch-size``. Class-conditional models take ``--labels``: one class (``3``), a list
cycled over the samples (``0,1,2``), or by default every class in turn (sample i gets class i mod C).

From Python::

    gen = load_generator("runs/cifar10_ddgan")
    images = gen.sample(64, steps=4, seed=0)           # [64, 3, 32, 32] in [-1, 1], float32 on the CPU
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from gdiff import data, nets, recipes
from gdiff.diffusion import Schedule
from gdiff.sampling import ddim, sample

SAMPLERS = ("ancestral", "ddim")
GRID_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def to_uint8(images: Tensor) -> Tensor:
    """Data-space images [N, C, H, W] in [-1, 1] (C = 1 or 3) -> uint8 [N, 3, H, W], round((x + 1) * 127.5).

    Raw uint8 pixels p mapped to model space (p / 127.5 - 1) come back as exactly p; one channel is repeated.
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be [N, 1 or 3, H, W], got shape {tuple(images.shape)}")
    pixels = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.expand(-1, 3, -1, -1).contiguous() if pixels.shape[1] == 1 else pixels


def chunk_seed(seed: int, index: int) -> int:
    """The seed of chunk ``index``: independent streams for different (seed, index) pairs."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint64)[0] >> 1)


class _DescribedData(data.DataSource):
    """Shape and classes of an image data set whose files are absent (read from the run's metadata.json)."""

    def __init__(self, description: dict) -> None:
        self.name = str(description.get("name", "data"))
        self.data_shape = tuple(int(d) for d in description["shape"])
        self.num_classes = int(description.get("num_classes", 0))


def _data_source(run_dir: Path, recipe: recipes.Recipe) -> data.DataSource:
    """The recipe's data source; for image data whose files are not here, its description from metadata.json."""
    try:
        return data.build(recipe.data)
    except data.MissingDataError:
        meta_path = run_dir / "metadata.json"
        starts = json.loads(meta_path.read_text()).get("starts", []) if meta_path.is_file() else []
        described = [s["data"] for s in starts if isinstance(s.get("data"), dict) and "shape" in s["data"]]
        if not described or len(described[-1]["shape"]) != 3:
            raise
        return _DescribedData(described[-1])


@dataclass
class ExportedGenerator:
    """An EMA generator with its recipe, schedule and data source (for shapes, classes and ``to_data``)."""

    recipe: recipes.Recipe
    G: nn.Module
    schedule: Schedule
    source: data.DataSource
    device: torch.device

    def nfe(self, steps: int | None = None) -> int:
        """Network calls per sample: the number of steps (the schedule's T by default)."""
        return len(self.schedule.sampling_times(steps)) - 1

    def labels(self, num: int, labels: int | Sequence[int] | Tensor | None = None) -> Tensor | None:
        """Labels [num] (int64) for a class-conditional generator (None otherwise); see the module docstring."""
        classes = self.source.num_classes
        if not classes:
            if labels is not None:
                raise ValueError("this generator is unconditional (num_classes 0): it takes no labels")
            return None
        base = torch.arange(classes) if labels is None else torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
        if len(base) == 0 or base.min() < 0 or base.max() >= classes:
            raise ValueError(f"labels must be class indices in [0, {classes}), got {base.tolist()[:10]}")
        return base.repeat((num + len(base) - 1) // len(base))[:num]

    def sample_chunk(self, index: int, size: int, labels: Tensor | None = None, steps: int | None = None,
                     seed: int = 0, sampler: str = "ancestral", eta: float = 0.0) -> Tensor:
        """Chunk ``index`` of ``size`` samples in data space (float32, CPU), a pure function of its arguments."""
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        gen = torch.Generator(device=self.device).manual_seed(chunk_seed(seed, index))
        x_T = torch.randn(size, *self.source.data_shape, generator=gen, device=self.device)
        y = None if labels is None else labels.to(self.device)
        if sampler == "ancestral":
            x0 = sample(self.G, self.schedule, x_T, y, steps=steps, generator=gen)
        else:
            x0 = ddim(self.G, self.schedule, x_T, y, steps=steps, eta=eta, generator=gen)
        return self.source.to_data(x0).float().cpu()

    def sample(self, num: int, labels: int | Sequence[int] | Tensor | None = None, steps: int | None = None,
               seed: int = 0, batch_size: int = 1000, sampler: str = "ancestral", eta: float = 0.0) -> Tensor:
        """``num`` samples [num, *data_shape] in data space (float32, CPU), in chunks of ``batch_size``."""
        if num < 1 or batch_size < 1:
            raise ValueError(f"num and batch_size must be >= 1, got {num} and {batch_size}")
        y = self.labels(num, labels)
        return torch.cat([self.sample_chunk(k, min(batch_size, num - lo), None if y is None else y[lo:lo + batch_size],
                                            steps, seed, sampler, eta)
                          for k, lo in enumerate(range(0, num, batch_size))])


def load_generator(run_dir: str | Path, device: str | torch.device = "cpu") -> ExportedGenerator:
    """Load ``recipe.yaml`` and ``generator_ema.safetensors`` of ``run_dir`` (an exported generator)."""
    run_dir = Path(run_dir)
    recipe_path, weights = run_dir / "recipe.yaml", run_dir / "generator_ema.safetensors"
    for path in (recipe_path, weights):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: is {run_dir} a gdiff run directory (or an exported "
                                    f"generator: recipe.yaml + generator_ema.safetensors)?")
    recipe = recipes.load(recipe_path)
    source = _data_source(run_dir, recipe)
    G = nets.build(recipe.generator, source.data_shape, source.num_classes, "generator")
    G.load_state_dict(load_file(str(weights)))
    device = torch.device(device)
    G = G.to(device).eval().requires_grad_(False)
    return ExportedGenerator(recipe, G, Schedule.from_config(recipe.diffusion), source, device)


def write_samples(samples: Tensor, out: Path, labels: Tensor | None = None) -> None:
    """Write data-space samples by the suffix of ``out`` (npz, grid image, or folder of PNGs), atomically."""
    from PIL import Image

    suffix = out.suffix.lower()
    if suffix == ".npz":
        out.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"samples": samples.numpy().astype(np.float32)}
        if labels is not None:
            arrays["labels"] = labels.numpy().astype(np.int64)
        tmp = out.with_name(f".tmp-{os.getpid()}-{out.name}")
        with tmp.open("wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, out)
        return
    if samples.ndim != 4:
        raise ValueError(f"{out}: image outputs need image samples [N, C, H, W], got shape {tuple(samples.shape)}; "
                         f"write an .npz instead")
    pixels = to_uint8(samples)
    if samples.shape[1] == 1:
        pixels = pixels[:, :1]
    if suffix in GRID_SUFFIXES:
        from torchvision.utils import make_grid

        grid = make_grid(pixels, nrow=int(np.ceil(np.sqrt(len(pixels)))), padding=1, pad_value=255)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".tmp-{os.getpid()}-{out.name}")
        Image.fromarray(grid.permute(1, 2, 0).numpy()).save(tmp, format=Image.registered_extensions()[suffix])
        os.replace(tmp, out)
        return
    if suffix:
        raise ValueError(f"--out {out}: unknown suffix {suffix!r}; use .npz, one of {GRID_SUFFIXES} for a grid, "
                         f"or a folder path without a suffix")
    out.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(pixels.permute(0, 2, 3, 1).numpy()):
        Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(out / f"{i:06d}.png")


def parse_labels(text: str | None) -> list[int] | None:
    """``--labels``: ``3`` or ``0,1,2`` -> list of ints (None when not given)."""
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise ValueError(f"--labels must be a class index or a comma-separated list of them, got {text!r}") from err


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gdiff.sample", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="run directory or exported generator")
    parser.add_argument("--num", type=int, required=True, help="number of samples")
    parser.add_argument("--out", type=Path, required=True, help="FILE.npz, GRID.png or a FOLDER for PNGs")
    parser.add_argument("--labels", default=None, help="class-conditional: a class or a list like 0,1,2 (cycled)")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps K = NFE; default the recipe's T")
    parser.add_argument("--sampler", choices=SAMPLERS, default="ancestral",
                        help="ancestral: the posterior chain (DDGAN/SIDDM, DDPM); ddim: deterministic DDIM")
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM's eta (0: deterministic)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.num < 1 or args.batch_size < 1:
        parser.error(f"--num and --batch-size must be >= 1, got {args.num} and {args.batch_size}")
    try:
        gen = load_generator(args.run_dir, args.device)
        labels = gen.labels(args.num, parse_labels(args.labels))
        nfe = gen.nfe(args.steps)
        start = time.perf_counter()
        samples = gen.sample(args.num, labels, args.steps, args.seed, args.batch_size, args.sampler, args.eta)
        seconds = time.perf_counter() - start
        write_samples(samples, args.out, labels)
    except (FileNotFoundError, ValueError) as err:
        parser.exit(2, f"error: {err}\n")
    kind = "images" if samples.ndim == 4 else "samples"
    print(f"wrote {len(samples)} samples of shape {tuple(samples.shape[1:])} to {args.out}")
    print(f"NFE {nfe} ({args.sampler}), {len(samples) / seconds:.1f} {kind}/s on {gen.device} "
          f"({seconds:.2f} s, batch {args.batch_size})")


if __name__ == "__main__":
    main()
