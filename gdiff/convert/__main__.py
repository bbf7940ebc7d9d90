"""python -m gdiff.convert ddgan|wavediff CHECKPOINT --recipe RECIPE --out DIR

Converts a generator checkpoint of the DDGAN or WaveDiff code (``netG_<epoch>.pth``, the EMA generator the
authors publish) into a gdiff generator folder that ``gdiff.load_generator``, ``python -m gdiff.sample`` and
``python -m gdiff.eval`` read. RECIPE gives the architecture, data and diffusion sections (e.g.
recipes/cifar10_ddgan.yaml). Exit status 0 done, 2 bad input (one ``error:`` line, nothing written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gdiff.convert import FAMILIES, convert


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gdiff.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("family", choices=sorted(FAMILIES), help="the code base that saved the checkpoint")
    parser.add_argument("checkpoint", type=Path, help="netG_<epoch>.pth (or a .safetensors with the same names)")
    parser.add_argument("--recipe", type=Path, required=True, help="recipe with the checkpoint's architecture")
    parser.add_argument("--out", type=Path, required=True, help="new folder for config.json + model.safetensors")
    args = parser.parse_args(argv)
    try:
        gen = convert(FAMILIES[args.family], args.checkpoint, args.recipe, args.out)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    count = sum(p.numel() for p in gen.G.parameters())
    print(f"converted {args.checkpoint} ({count:,} parameters) into {args.out}: {gen.nfe()} steps per sample")
    return 0


if __name__ == "__main__":
    sys.exit(main())
