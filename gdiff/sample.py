"""Sampling from an exported generator: ``python -m gdiff.sample GENERATOR --num N --out OUT``.

``GENERATOR`` is an exported generator folder (gdiff/export.py: ``config.json`` + ``model.safetensors``), a
run directory (its EMA generator, ``RUN/generator/``) or a Hub repo id; nothing of the training state or the
data set is read. ``OUT`` decides the format by its suffix:

    samples.npz     ``samples`` float32 [N, *data shape] in data space (+ ``labels`` int64 [N] if conditional)
    grid.png        one grid image (also .jpg, .webp); images only
    pngs/           a folder of lossless PNGs 000000.png, 000001.png, ... (any path without a suffix)

Sample i belongs to chunk i // batch_size, and chunk k is drawn from its own seed (``seed``, k): the samples do
not depend on how the chunks are spread over processes (``python -m gdiff.eval`` relies on it), only on
``--seed`` and ``--batch-size``. Class-conditional models take ``--labels``: one class (``3``), a list
cycled over the samples (``0,1,2``), or by default every class in turn (sample i gets class i mod C).

From Python::

    gen = gdiff.load_generator("runs/cifar10_ddgan")
    images = gen.sample(64, steps=4, seed=0)           # [64, 3, 32, 32] in [-1, 1], float32 on the CPU
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gdiff.export import SAMPLERS, load_generator
from gdiff.outputs import check_output

GRID_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def to_uint8(images: Tensor) -> Tensor:
    """Data-space images [N, C, H, W] in [-1, 1] (C = 1 or 3) -> uint8 [N, 3, H, W], round((x + 1) * 127.5).

    Raw uint8 pixels p mapped to model space (p / 127.5 - 1) come back as exactly p; one channel is repeated.
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be [N, 1 or 3, H, W], got shape {tuple(images.shape)}")
    pixels = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.expand(-1, 3, -1, -1).contiguous() if pixels.shape[1] == 1 else pixels


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
    parser.add_argument("generator", help="exported generator folder, run directory or Hub repo id")
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
    if not (math.isfinite(args.eta) and args.eta >= 0):
        parser.error(f"--eta must be a finite number >= 0, got {args.eta}")
    try:
        suffix = check_output(args.out, (".npz", *GRID_SUFFIXES), folder=True)
        gen = load_generator(args.generator, args.device)
        if suffix != ".npz" and len(gen.config.data_shape) != 3:
            raise ValueError(f"--out {args.out}: image outputs need image samples; this generator makes data of "
                             f"shape {list(gen.config.data_shape)}: write an .npz instead")
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
          f"({seconds:.2f} s, batch {args.batch_size}; generator {seconds - gen.to_data_seconds:.2f} s, "
          f"map to data space ({gen.data_map.config()['type']}) {gen.to_data_seconds:.2f} s)")


if __name__ == "__main__":
    main()
