"""Evaluation of a generator during and after training: ``evaluate(sample_fn, source, cfg)``.

``generate`` splits the sampling of an exported generator over processes (the Trainer and
``python -m gdiff.eval`` both use it, so the same seed gives the same samples); ``score`` computes the metrics.

The Trainer hands over a sampling function (``sample_fn(num) -> samples`` in data space, on the CPU) and gets
a flat dict of metric name -> float back; which metrics apply is decided here from the data source and the
recipe's ``eval`` section, never in the Trainer:

* 2-D mixtures: always the mixture metrics (Frechet distance of Gaussian fits, modes covered, KL to uniform).
* images: ``eval.metrics`` from ``fid``, ``isc``, ``kid``, ``prc`` (torch-fidelity, :mod:`gdiff.eval.fidelity`)
  and ``modes`` (digit data: :mod:`gdiff.eval.modes`). The reference set is the recipe's data set, at most
  ``REFERENCE_COUNT`` images of it, with statistics cached under a key of data set, split, resolution, count.

``python -m gdiff.eval RUN_DIR`` (``gdiff/eval/__main__.py``) does the same for a finished run, split over
processes under ``accelerate launch``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from gdiff.data import DataSource
from gdiff.data.transformed import untransformed
from gdiff.metrics.names import DIGIT_FEATURES, IMAGE_METRICS

if TYPE_CHECKING:  # torch-fidelity imports torchvision (seconds): loaded only when image metrics run
    from gdiff.eval.fidelity import FidelityOptions, Reference
    from gdiff.export import ExportedGenerator

REFERENCE_COUNT = 50_000  # the papers' 50k: all of CIFAR-10 train, a fixed 50k subset of larger sets


def check_metrics(metrics: Sequence[str], source: DataSource) -> None:
    """Raise a ValueError naming ``eval.metrics`` unless every metric applies to ``source``."""
    unknown = sorted(set(metrics) - set(IMAGE_METRICS))
    if unknown:
        raise ValueError(f"eval.metrics: unknown metric(s) {unknown}; known: {list(IMAGE_METRICS)} (2-D mixtures "
                         f"always get their own metrics)")
    if metrics and len(source.data_shape) != 3:
        raise ValueError(f"eval.metrics {list(metrics)} are image metrics; {source.name} has data shape "
                         f"{source.data_shape} (leave eval.metrics empty for mixtures)")


def image_metrics(samples: Tensor, source: DataSource, metrics: Sequence[str], options: FidelityOptions | None = None,
                  reference: Reference | None = None, reference_count: int = REFERENCE_COUNT) -> dict[str, float]:
    """Metrics of data-space images [N, C, H, W] in [-1, 1] of ``source``'s kind.

    ``options``: :class:`gdiff.eval.fidelity.FidelityOptions` (``feature_extractor="digits"`` reads the images
    with gdiff's digit classifier instead of Inception-v3/VGG16); ``reference``: a
    :class:`gdiff.eval.fidelity.Reference` instead of ``reference_count`` images of ``source``.
    """
    check_metrics(metrics, source)
    from gdiff.eval.fidelity import METRICS, FidelityOptions, fidelity_metrics, source_reference

    source = untransformed(source)  # the samples are in data space: compare them with data-space examples
    from gdiff.sample import to_uint8

    options = options or FidelityOptions()
    out: dict[str, float] = {}
    chosen = [m for m in metrics if m in METRICS]
    if chosen:
        if options.feature_extractor == DIGIT_FEATURES:
            import torch_fidelity
            from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

            from gdiff.eval.digit_classifier import EXTRACTOR_NAME, DigitFeatures, digit_classifier

            if EXTRACTOR_NAME not in FEATURE_EXTRACTORS_REGISTRY:
                torch_fidelity.register_feature_extractor(EXTRACTOR_NAME, DigitFeatures)
            path, _, accuracy = digit_classifier(source, options.cache_dir)
            options = replace(options, feature_extractor=EXTRACTOR_NAME, extractor_weights=str(path))
            out["classifier_test_accuracy"] = accuracy
        reference = reference or source_reference(source, reference_count)
        out.update(fidelity_metrics(to_uint8(samples), reference, chosen, options))
    if "modes" in metrics:
        from gdiff.eval.modes import mode_metrics

        out.update(mode_metrics(samples, source, options.cache_dir))
    return out


def options_from_config(cfg: Any) -> FidelityOptions:
    """FidelityOptions from a recipe's ``eval`` section (keys feature_extractor, inception_weights,
    vgg16_weights, where the recipe has them; empty strings mean "not set")."""
    from gdiff.eval.fidelity import FidelityOptions

    def key(name: str) -> str | None:
        return getattr(cfg, name, "") or None

    return FidelityOptions(feature_extractor=key("feature_extractor"), inception_weights=key("inception_weights"),
                           vgg16_weights=key("vgg16_weights"),
                           device="cuda" if torch.cuda.is_available() else "cpu")


def generate(generator: ExportedGenerator, num: int, labels: Tensor | None = None, steps: int | None = None,
             seed: int = 0, batch_size: int = 1000, sampler: str = "ancestral", rank: int = 0,
             world: int = 1) -> Tensor:
    """``generator.sample(num, labels, steps, seed, batch_size, sampler)`` split over ``world`` processes:
    process ``rank`` draws the chunks k = rank, rank + world, ... and every process gets all of them, in chunk
    order (collective when world > 1). Chunk k is a pure function of (seed, k), so the result is the same
    for any number of processes."""
    from accelerate.utils import gather_object

    labels = generator.labels(num, labels)
    starts = range(0, num, batch_size)
    mine = [(k, generator.sample_chunk(k, min(batch_size, num - starts[k]),
                                       None if labels is None else labels[starts[k]:starts[k] + batch_size],
                                       steps, seed, sampler))
            for k in range(rank, len(starts), world)]
    everything = gather_object(mine) if world > 1 else mine
    return torch.cat([chunk for _, chunk in sorted(everything, key=lambda item: item[0])])


def applies(source: DataSource, cfg: Any) -> bool:
    """Whether :func:`score` computes anything for ``source`` under the ``eval`` section ``cfg`` (mixtures always;
    images when ``cfg.metrics`` names some); raises a ValueError naming ``eval.metrics`` when one cannot apply."""
    check_metrics(cfg.metrics, source)
    return getattr(source, "centres", None) is not None or bool(cfg.metrics)


def score(samples: Tensor, source: DataSource, cfg: Any, options: FidelityOptions | None = None) -> dict[str, float]:
    """Metrics of data-space ``samples`` [N, ...]: mixtures get the mixture metrics, images ``cfg.metrics``."""
    centres = getattr(source, "centres", None)
    if centres is not None:
        from gdiff.metrics.mixture import mixture_metrics

        return mixture_metrics(samples, source.points, centres, source.mode_std)
    return image_metrics(samples, source, cfg.metrics, options or options_from_config(cfg))


def evaluate(sample_fn: Callable[[int], Tensor], source: DataSource, cfg: Any,
             options: FidelityOptions | None = None) -> dict[str, float]:
    """Metrics of ``sample_fn(cfg.num_samples)`` (drawn only when some metric applies)."""
    if not applies(source, cfg):
        return {}
    return score(sample_fn(cfg.num_samples), source, cfg, options)
