"""Composable diffusion-GAN objectives.

Presets (each paper ablation is one argument):

    ddgan(r1_gamma=0.02, lazy_reg=15)            # DDGAN: pairwise adversarial + lazy R1
    ddgan(r1_batch_fraction=0.25)                # R1 on a quarter of the real batch (same expectation)
    ddgan(r1_gamma=0, denoise_weight=1)          # DDGAN with the U-Net denoising regulariser instead
    siddm(afd_weight=1, denoise_weight=1)        # full SIDDM
    siddm(afd_weight=0)                          # SIDDM without AFD (marginal GAN only)
    siddm(entropy=False)                         # SIDDM without the adversarial entropy term
    siddm(adversarial_weight=0)                  # AFD only
    siddm(d_input="x0", entropy=False)           # the SIDDM authors' toy code: D judges x0 and G's x0'
    ufogen(reconstruction_weight=1)              # UFOGen: marginal GAN on forward-process fakes + x0 loss
    wavediff()                                   # WaveDiff's loss: DDGAN + L1 reconstruction (on subbands)

or any list of terms: ``Objective([NonSaturatingGAN(pairwise=False), AFDCrossEntropy(0.5)])``.
In a recipe: ``objective: {type: ddgan|siddm|ufogen|wavediff, ...keyword arguments}`` or
``objective: {type: terms, terms: [{term: adversarial, pairwise: false}, {term: afd_cross_entropy, weight: 1}]}``
(``terms`` also takes ``d_input`` and ``transition``, the :class:`Objective` arguments). Variants:
docs/variants.md.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

from gdiff import sections
from gdiff.objectives.adversarial import NonSaturatingGAN
from gdiff.objectives.afd import AdversarialEntropy, AFDCrossEntropy
from gdiff.objectives.base import Losses, Objective, Pair, StepData, Term
from gdiff.objectives.denoising import DenoisingRegularizer
from gdiff.objectives.gaussian import GaussianDiffusion
from gdiff.objectives.latent_reconstruction import LatentReconstruction, lddgan
from gdiff.objectives.r1 import R1Penalty, r1_penalty
from gdiff.objectives.reconstruction import Reconstruction

__all__ = ["AFDCrossEntropy", "AdversarialEntropy", "DenoisingRegularizer", "GaussianDiffusion", "Losses",
           "NonSaturatingGAN", "Objective", "Pair", "R1Penalty", "Reconstruction", "StepData", "Term", "ddgan",
           "from_config", "r1_penalty", "siddm", "ufogen", "wavediff"]


def ddgan(r1_gamma: float = 0.02, lazy_reg: int = 15, denoise_weight: float = 0.0,
          adversarial_weight: float = 1.0, d_input: str = "x_prev", r1_batch_fraction: float = 1.0) -> Objective:
    """DDGAN: non-saturating GAN on pairs (x_s, x_t), R1 every ``lazy_reg`` steps on ``r1_batch_fraction`` of
    the real batch (gdiff/objectives/r1.py), optional denoising.
    ``d_input="x0"``: the pairs are (x0, x_t) and (x0', x_t) instead."""
    return Objective([NonSaturatingGAN(pairwise=True, weight=adversarial_weight),
                      R1Penalty(r1_gamma, lazy_reg, r1_batch_fraction),
                      DenoisingRegularizer(denoise_weight)], name="ddgan", d_input=d_input)


def siddm(afd_weight: float = 1.0, entropy: bool = True, afd_weighting: str = "none",
          denoise_weight: float = 0.0, adversarial_weight: float = 1.0, entropy_fit_weight: float = 1.0,
          r1_gamma: float = 0.0, lazy_reg: int = 1, d_input: str = "x_prev",
          r1_batch_fraction: float = 1.0) -> Objective:
    """SIDDM: marginal GAN on x_s + ``afd_weight`` x (AFD cross-entropy - adversarial entropy).
    ``d_input="x0"``: the marginal GAN judges x0 against G's x0' (the authors' toy code; needs entropy=False)."""
    terms: list[Term] = [NonSaturatingGAN(pairwise=False, weight=adversarial_weight),
                         AFDCrossEntropy(afd_weight, afd_weighting),
                         DenoisingRegularizer(denoise_weight),
                         R1Penalty(r1_gamma, lazy_reg, r1_batch_fraction)]
    if entropy and afd_weight:
        terms.append(AdversarialEntropy(afd_weight, fit_weight=entropy_fit_weight))
    return Objective(terms, name="siddm", d_input=d_input)


def ufogen(reconstruction_weight: float = 1.0, reconstruction: str = "l2", weighting: str = "snr",
           adversarial_weight: float = 1.0, denoise_weight: float = 0.0, r1_gamma: float = 0.0,
           lazy_reg: int = 1, r1_batch_fraction: float = 1.0) -> Objective:
    """UFOGen (Xu et al., CVPR 2024): marginal GAN on x_s where the fake x_s' ~ q(x_s | x0') comes from the
    FORWARD process (needs ``generator.transition: forward``), plus ``reconstruction_weight`` x the diffusion
    loss (``weighting="snr"``: mean (eps' - eps)^2; ``"none"``: mean (x0' - x0)^2)."""
    return Objective([NonSaturatingGAN(pairwise=False, weight=adversarial_weight),
                      Reconstruction(reconstruction_weight, reconstruction, weighting),
                      DenoisingRegularizer(denoise_weight),
                      R1Penalty(r1_gamma, lazy_reg, r1_batch_fraction)], name="ufogen", transition="forward")


def wavediff(r1_gamma: float = 0.02, lazy_reg: int = 15, reconstruction_weight: float = 1.0,
             reconstruction: str = "l1", adversarial_weight: float = 1.0, r1_batch_fraction: float = 1.0
             ) -> Objective:
    """WaveDiff's loss (Phung et al., CVPR 2023): DDGAN's (pairs + lazy R1) plus ``reconstruction_weight`` x
    mean |x0' - x0|. The wavelet space itself is the data transform (``data.transform: haar``)."""
    return Objective([NonSaturatingGAN(pairwise=True, weight=adversarial_weight),
                      R1Penalty(r1_gamma, lazy_reg, r1_batch_fraction),
                      Reconstruction(reconstruction_weight, reconstruction)], name="wavediff")


TERMS = {
    "adversarial": NonSaturatingGAN,
    "r1": R1Penalty,
    "afd_cross_entropy": AFDCrossEntropy,
    "afd_entropy": AdversarialEntropy,
    "denoising": DenoisingRegularizer,
    "reconstruction": Reconstruction,
    "latent_reconstruction": LatentReconstruction,
}
PRESETS = {"ddgan": ddgan, "siddm": siddm, "gaussian": GaussianDiffusion, "ufogen": ufogen,
           "wavediff": wavediff, "lddgan": lddgan}


def _check_weights(section: Mapping[str, Any], where: str) -> None:
    """Loss weights (keys ``weight``, ``d_weight``, ``gamma``, ``*_weight``, ``*_gamma``) must be >= 0: a negative
    weight turns a loss into its opposite. ValueError naming ``where.key``; values of other types are left to
    the type check."""
    for key, value in section.items():
        weight = key in ("weight", "d_weight", "gamma") or key.endswith(("_weight", "_gamma"))
        if weight and isinstance(value, numbers.Real) and not isinstance(value, bool) and value < 0:
            raise ValueError(f"recipe key {where}.{key} must be >= 0 (a loss weight), got {value}")


def _build_term(spec: Any, index: int) -> Term:
    where = f"objective.terms[{index}]"
    if not isinstance(spec, Mapping) or spec.get("term") not in TERMS:
        raise ValueError(f"{where} needs 'term' set to one of {sorted(TERMS)}, got {spec!r}")
    _check_weights(spec, where)
    return sections.call(TERMS[spec["term"]], {k: v for k, v in spec.items() if k != "term"}, where)


def from_config(section: Mapping[str, Any]) -> Objective:
    """Build from a recipe's ``objective`` section; the keys are checked against the preset's (or each term's)
    signature and annotations (:func:`gdiff.sections.call`), errors name the offending key."""
    kind = section.get("type") if isinstance(section, Mapping) else None
    if kind == "terms":
        terms = section.get("terms")
        if not isinstance(terms, list) or not terms:
            raise ValueError("objective.terms must be a non-empty list of {term: NAME, ...} entries")
        unknown = set(section) - {"type", "terms", "d_input", "transition"}
        if unknown:
            raise ValueError(f"objective (terms): unknown keys {sorted(unknown)}; besides 'terms' it takes "
                             f"d_input and transition")
        d_input = sections.check_value(section.get("d_input", "x_prev"), str, "objective.d_input")
        transition = sections.check_value(section.get("transition"), str | None, "objective.transition")
        return Objective([_build_term(spec, i) for i, spec in enumerate(terms)], name="terms", d_input=d_input,
                         transition=transition)
    if kind not in PRESETS:
        raise ValueError(f"objective.type must be one of {sorted([*PRESETS, 'terms'])}, got {kind!r}")
    _check_weights(section, "objective")
    return sections.call(PRESETS[kind], {k: v for k, v in section.items() if k != "type"}, "objective")
