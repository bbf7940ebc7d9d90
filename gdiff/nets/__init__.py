"""Networks, built from recipe sections by :func:`build`.

Contracts (every network of gdiff keeps them; objectives rely on nothing else):

* Generator: ``G(x_t, t, z, labels=None) -> x0_pred`` with ``x_t`` [B, *data_shape], ``t`` [B] float
  times in [0, 1], ``z`` [B, G.z_dim], ``labels`` [B] long or None. Output has the shape of ``x_t``.
* Discriminator: ``D(x_prev, t, x_t=None, labels=None) -> logits`` [B] (image-level real/fake logit).
  ``D(..., heads=("denoised", ...))`` returns a dict holding ``"logits"`` and each requested head, all
  computed in one pass. ``D.heads`` is the set of head names the network offers beyond ``"logits"``:
  ``"regression"`` (C: predicts x_t from x_prev, shape of x_prev), ``"denoised"`` (predicts x_0, shape
  of x_prev), ``"pixel_logits"`` ([B, H, W] per-pixel logits). ``D.pairwise`` is True when the network
  judges pairs (x_prev, x_t) (DDGAN) and False when it sees x_prev alone (SIDDM's marginal mode; x_t is
  then ignored).
* ``G.parameterization`` (:class:`gdiff.parameterization.Parameterization`, set by :func:`build` from the
  generator section's ``parameterization`` and ``transition`` keys) says what G's output means and how the
  reverse chain steps; the objectives and the sampler read it (default: x0 prediction, posterior draw).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from gdiff import sections
from gdiff.nets.ddgan_discriminator import DDGANLargeDiscriminator, DDGANSmallDiscriminator
from gdiff.nets.ncsnpp import NCSNppGenerator
from gdiff.nets.toy import ToyDiscriminator, ToyGenerator
from gdiff.nets.unet import UNetGenerator
from gdiff.nets.unet_discriminator import UNetDiscriminator
from gdiff.nets.wavediff_discriminator import WaveDiffSmallDiscriminator
from gdiff.nets.wavelet_ncsnpp import WaveletNCSNppGenerator
from gdiff.parameterization import Parameterization

# type name -> class; each class is built as cls(**section_without_type).
REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "toy_generator": ToyGenerator,
    "toy_discriminator": ToyDiscriminator,
    "ncsnpp": NCSNppGenerator,
    "ddgan_small": DDGANSmallDiscriminator,
    "ddgan_large": DDGANLargeDiscriminator,
    "unet": UNetGenerator,
    "unet_discriminator": UNetDiscriminator,
    "wavelet_ncsnpp": WaveletNCSNppGenerator,
    "wavediff_small": WaveDiffSmallDiscriminator,
}


def build(section: Mapping[str, Any], data_shape: tuple[int, ...] | None = None, num_classes: int = 0,
          where: str = "network") -> nn.Module:
    """Build a network from a recipe section ``{type: NAME, **kwargs}``.

    ``data_shape`` and ``num_classes`` come from the data set and are passed to the network unless the
    section sets them itself. The keys are checked against the class's signature and annotations
    (:func:`gdiff.sections.call`): errors name ``where.key``.
    """
    if not isinstance(section, Mapping) or "type" not in section:
        raise ValueError(f"recipe section '{where}' needs a 'type' key; known types: {sorted(REGISTRY)}")
    kind = section["type"]
    if kind not in REGISTRY:
        raise ValueError(f"{where}.type: unknown network type {kind!r}; known types: {sorted(REGISTRY)}")
    chain = {"predicts": section["parameterization"]} if "parameterization" in section else {}
    chain.update({"transition": section["transition"]} if "transition" in section else {})
    kwargs = {k: v for k, v in section.items() if k not in ("type", "parameterization", "transition")}
    if data_shape is not None:
        kwargs.setdefault("data_shape", tuple(data_shape))
    kwargs.setdefault("num_classes", num_classes)
    model = sections.call(REGISTRY[kind], kwargs, where)
    if chain:
        if not hasattr(model, "z_dim"):
            raise ValueError(f"{where} ({kind}): 'parameterization' and 'transition' are generator keys")
        model.parameterization = Parameterization(**chain)
    return model
