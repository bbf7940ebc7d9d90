"""``python -m gdiff.eval RUN_DIR --metrics fid,isc,kid,prc,modes [--num 50000] [--steps K] ...``

Draws ``--num`` samples from the run's EMA generator (``RUN_DIR/generator/``, gdiff/export.py) in
memory and scores them against the recipe's data set (or ``--ref DIR``, a folder of images); 2-D mixtures
get the mixture metrics. The result lands in ``RUN_DIR/eval_<sampler>_nfe<K>_n<num>.json`` (or ``--out``).

Under ``accelerate launch`` (e.g. ``ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 -m
gdiff.eval ...``) process r draws the chunks k = r, r + W, ... of ``--batch-size`` samples; chunk k is a pure
function of (seed, k) (:mod:`gdiff.sample`), so the gathered set, and every number computed from it, is the
one a single process draws. The main process computes the metrics.

Offline machines pass ``--inception-weights`` (fid, isc, kid) and ``--vgg16-weights`` (prc);
``--feature-extractor digits`` reads digit data with gdiff's own digit classifier instead. Weights files are read
without unpickling code and reference statistics live in gdiff's own cache (``--cache-dir``, default
``$XDG_CACHE_HOME/gdiff/fidelity``; :mod:`gdiff.eval.weights`, :mod:`gdiff.eval.stats_cache`).

Before the first sample is drawn, the command checks the output (a writable place for a ``.json`` file), the
weights and the cache folder; bad input ends with one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from gdiff.data import DataSource
    from gdiff.eval.fidelity import Reference
    from gdiff.sample import ExportedGenerator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m gdiff.eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="run directory or exported generator")
    parser.add_argument("--metrics", default="", help="comma-separated: fid,isc,kid,prc,modes (images)")
    parser.add_argument("--num", type=int, default=50_000, help="number of samples (default 50,000)")
    parser.add_argument("--batch-size", type=int, default=500, help="samples per generator call")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps K = NFE; default the recipe's T")
    parser.add_argument("--sampler", choices=("ancestral", "ddim"), default="ancestral")
    parser.add_argument("--labels", default=None, help="class-conditional: a class or list (default: all, cycled)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ref", type=Path, default=None, help="folder of reference images instead of the data set")
    parser.add_argument("--ref-num", type=int, default=None, help="reference images (default: 50,000 or all)")
    parser.add_argument("--inception-weights", default=None, help="torch-fidelity Inception-v3 weights file")
    parser.add_argument("--vgg16-weights", default=None, help="torchvision VGG16 weights file (for prc)")
    parser.add_argument("--feature-extractor", default=None,
                        help="digits (gdiff's digit classifier), a torch-fidelity name, or package.module:Class")
    parser.add_argument("--cache-dir", default=None,
                        help="statistics cache (default $GDIFF_CACHE_DIR/fidelity, ~/.cache/gdiff/fidelity)")
    parser.add_argument("--out", type=Path, default=None, help="result JSON (default: in RUN_DIR)")
    parser.add_argument("--protocol", choices=("gdiff", "ddgan"), default="gdiff",
                        help="gdiff: lossless samples; ddgan: the DDGAN/WaveDiff papers' JPEG samples, 50,000, train "
                             "split (gdiff/eval/protocols.py, docs/pretrained.md)")
    parser.add_argument("--verbose", action="store_true", help="torch-fidelity's progress output")
    args = parser.parse_args(argv)
    if args.num < 1 or args.batch_size < 1:
        parser.error(f"--num and --batch-size must be >= 1, got {args.num} and {args.batch_size}")
    if args.ref_num is not None and args.ref_num < 1:
        parser.error(f"--ref-num must be >= 1, got {args.ref_num}")
    args.metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    return args


def generate(gen: ExportedGenerator, args: argparse.Namespace, rank: int, world: int) -> tuple[torch.Tensor, float]:
    """All samples (this process draws chunks k = rank, rank + world, ...: :func:`gdiff.eval.generate`) and the
    seconds this process spent."""
    from gdiff.eval import generate as generate_split
    from gdiff.sample import parse_labels

    start = time.perf_counter()
    samples = generate_split(gen, args.num, parse_labels(args.labels), args.steps, args.seed, args.batch_size,
                             args.sampler, rank, world)
    return samples, time.perf_counter() - start


def reference_source(args: argparse.Namespace) -> DataSource:
    """The data set the samples are compared with: the run directory's recipe's data section."""
    from gdiff import data, recipes

    recipe = Path(args.run_dir) / "recipe.yaml"
    if not recipe.is_file():
        raise FileNotFoundError(f"{recipe} not found: gdiff.eval compares with the data set of a run directory's "
                                f"recipe; pass a run directory (an exported generator folder alone has no data set)")
    return data.build(recipes.load(recipe).data)


def reference_of(args: argparse.Namespace, source: DataSource) -> Reference | None:
    """The --ref folder as a Reference (key: folder path digest, resolution, count), or None for the data set."""
    if args.ref is None:
        return None
    from gdiff.data import ImageFolder
    from gdiff.eval import REFERENCE_COUNT
    from gdiff.eval.fidelity import source_reference

    resolution = source.data_shape[-1]
    path = args.ref.resolve()
    name = f"folder-{path.name}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    folder = ImageFolder(root=path, resolution=resolution, hflip=False, name=name)
    return source_reference(folder, args.ref_num or REFERENCE_COUNT, split="all")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; bad input ends with ``error: ...`` on stderr and exit status 2 (SystemExit(2))."""
    args = parse_args(argv)
    from gdiff.eval.fidelity import MissingWeightsError

    try:
        evaluate_run(args)
    except (FileNotFoundError, ValueError, NotImplementedError, MissingWeightsError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def evaluate_run(args: argparse.Namespace) -> None:
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    from gdiff.eval import REFERENCE_COUNT, check_metrics, image_metrics
    from gdiff.eval.fidelity import FidelityOptions
    from gdiff.export import load_generator
    from gdiff.metrics.mixture import mixture_metrics
    from gdiff.outputs import check_output

    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))  # as Accelerator reads it
    gen = load_generator(args.run_dir, state.device)
    source = reference_source(args)
    mixture = getattr(source, "centres", None) is not None
    check_metrics(args.metrics, source)
    from gdiff.eval.protocols import PROTOCOLS

    protocol = PROTOCOLS[args.protocol]
    if mixture and protocol.jpeg:
        raise ValueError(f"--protocol {args.protocol} is for images; the data set is a 2-D mixture")
    protocol.check(args.num, "train" if args.ref else getattr(source, "split", "train"))
    if not mixture and not args.metrics:
        raise ValueError("--metrics is required for image data (fid, isc, kid, prc, modes)")
    options = FidelityOptions(feature_extractor=args.feature_extractor, inception_weights=args.inception_weights,
                              vgg16_weights=args.vgg16_weights, cache_dir=args.cache_dir,
                              device=state.device.type, verbose=args.verbose)
    nfe = gen.nfe(args.steps)
    out = args.out or args.run_dir / f"eval_{args.sampler}_nfe{nfe}_n{args.num}.json"
    check_output(out, (".json",), what="--out" if args.out else "RUN_DIR (or --out elsewhere)")
    if not mixture:
        options.check(args.metrics)
    reference = None if mixture else reference_of(args, source)
    samples, seconds = generate(gen, args, state.process_index, state.num_processes)
    if state.is_main_process:
        if mixture:
            metrics = mixture_metrics(samples, source.points, source.centres, source.mode_std)
        else:
            metrics = image_metrics(protocol.prepare(samples), source, args.metrics, options, reference,
                                    args.ref_num or REFERENCE_COUNT)
        result = {
            "run_dir": str(args.run_dir), "metrics": metrics, "num_samples": len(samples), "nfe": nfe,
            "sampler": args.sampler, "seed": args.seed, "batch_size": args.batch_size, "protocol": args.protocol,
            "reference": str(args.ref) if args.ref else source.name,
            "feature_extractor": args.feature_extractor or "default (inception-v3-compat; vgg16 for prc)",
            "processes": state.num_processes, "device": str(state.device),
            "generation_seconds": round(seconds, 3),
            "samples_per_second_per_process": round(len(samples) / state.num_processes / max(seconds, 1e-9), 2),
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".tmp-{os.getpid()}-{out.name}")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, out)
        print(json.dumps(result, indent=2))
    state.wait_for_everyone()


if __name__ == "__main__":
    main()
