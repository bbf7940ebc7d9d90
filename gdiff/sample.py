"""``python -m gdiff.sample RUN_DIR --num N --out FILE.npz [--steps K] [--seed S]``.

Loads the run's recipe and EMA generator and writes ``samples`` (float32, data space, [N, *data shape]) to
an .npz file (plus ``labels`` for class-conditional data). NFE = K (default: the recipe's T).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from gdiff import data, nets, recipes
from gdiff.diffusion import Schedule
from gdiff.sampling import sample


def load_generator(run_dir: Path) -> tuple[recipes.Recipe, torch.nn.Module, data.DataSource]:
    """(recipe, EMA generator in eval mode, data source) of a finished or checkpointed run."""
    recipe_path, weights = run_dir / "recipe.yaml", run_dir / "generator_ema.safetensors"
    for path in (recipe_path, weights):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: is {run_dir} a gdiff run directory with a checkpoint?")
    recipe = recipes.load(recipe_path)
    source = data.build(recipe.data)
    G = nets.build(recipe.generator, source.data_shape, source.num_classes, "generator")
    G.load_state_dict(load_file(str(weights)))
    return recipe, G.eval().requires_grad_(False), source


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gdiff.sample", description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--num", type=int, required=True, help="number of samples")
    parser.add_argument("--out", type=Path, required=True, help="output .npz file")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps K (NFE); default the recipe's T")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.num < 1:
        parser.error(f"--num must be >= 1, got {args.num}")
    recipe, G, source = load_generator(args.run_dir)
    schedule = Schedule.from_config(recipe.diffusion)
    device = torch.device(args.device)
    G.to(device)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    chunks = []
    for lo in range(0, args.num, args.batch_size):
        n = min(args.batch_size, args.num - lo)
        x_T = torch.randn(n, *source.data_shape, generator=gen, device=device)
        chunks.append(source.to_data(sample(G, schedule, x_T, steps=args.steps, generator=gen)).float().cpu())
    samples = torch.cat(chunks).numpy().astype(np.float32)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".tmp-{os.getpid()}-{args.out.name}")
    with tmp.open("wb") as f:
        np.savez(f, samples=samples)
    os.replace(tmp, args.out)
    print(f"wrote {len(samples)} samples of shape {samples.shape[1:]} to {args.out}")


if __name__ == "__main__":
    main()
