"""Composable diffusion-GAN objectives.

Presets (each paper ablation is one argument):

    ddgan(r1_gamma=0.02, lazy_reg=15)            # DDGAN: pairwise adversarial + lazy R1
    ddgan(r1_gamma=0, denoise_weight=1)          # DDGAN with the U-Net denoising regulariser instead
    siddm(afd_weight=1, denoise_weight=1)        # full SIDDM
    siddm(afd_weight=0)                          # SIDDM without AFD (marginal GAN only)
    siddm(entropy=False)                         # SIDDM without the adversarial entropy term
    siddm(adversarial_weight=0)                  # AFD only

or any list of terms: ``Objective([NonSaturatingGAN(pairwise=False), AFDCrossEntropy(0.5)])``.
In a recipe: ``objective: {type: ddgan|siddm, ...keyword arguments}`` or
``objective: {type: terms, terms: [{term: adversarial, pairwise: false}, {term: afd_cross_entropy, weight: 1}]}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gdiff.objectives.adversarial import NonSaturatingGAN
from gdiff.objectives.afd import AdversarialEntropy, AFDCrossEntropy
from gdiff.objectives.base import Losses, Objective, Pair, StepData, Term
from gdiff.objectives.denoising import DenoisingRegularizer
from gdiff.objectives.r1 import R1Penalty, r1_penalty

__all__ = ["AFDCrossEntropy", "AdversarialEntropy", "DenoisingRegularizer", "Losses", "NonSaturatingGAN",
           "Objective", "Pair", "R1Penalty", "StepData", "Term", "ddgan", "from_config", "r1_penalty",
           "siddm"]


def ddgan(r1_gamma: float = 0.02, lazy_reg: int = 15, denoise_weight: float = 0.0,
          adversarial_weight: float = 1.0) -> Objective:
    """DDGAN: non-saturating GAN on pairs (x_s, x_t), R1 every ``lazy_reg`` steps, optional denoising."""
    return Objective([NonSaturatingGAN(pairwise=True, weight=adversarial_weight),
                      R1Penalty(r1_gamma, lazy_reg),
                      DenoisingRegularizer(denoise_weight)], name="ddgan")


def siddm(afd_weight: float = 1.0, entropy: bool = True, afd_weighting: str = "none",
          denoise_weight: float = 0.0, adversarial_weight: float = 1.0, entropy_fit_weight: float = 1.0,
          r1_gamma: float = 0.0, lazy_reg: int = 1) -> Objective:
    """SIDDM: marginal GAN on x_s + ``afd_weight`` x (AFD cross-entropy - adversarial entropy)."""
    terms: list[Term] = [NonSaturatingGAN(pairwise=False, weight=adversarial_weight),
                         AFDCrossEntropy(afd_weight, afd_weighting),
                         DenoisingRegularizer(denoise_weight),
                         R1Penalty(r1_gamma, lazy_reg)]
    if entropy and afd_weight:
        terms.append(AdversarialEntropy(afd_weight, fit_weight=entropy_fit_weight))
    return Objective(terms, name="siddm")


TERMS = {
    "adversarial": NonSaturatingGAN,
    "r1": R1Penalty,
    "afd_cross_entropy": AFDCrossEntropy,
    "afd_entropy": AdversarialEntropy,
    "denoising": DenoisingRegularizer,
}
PRESETS = {"ddgan": ddgan, "siddm": siddm}


def _build_term(spec: Any, index: int) -> Term:
    where = f"objective.terms[{index}]"
    if not isinstance(spec, Mapping) or spec.get("term") not in TERMS:
        raise ValueError(f"{where} needs 'term' set to one of {sorted(TERMS)}, got {spec!r}")
    kwargs = {k: v for k, v in spec.items() if k != "term"}
    try:
        return TERMS[spec["term"]](**kwargs)
    except TypeError as err:
        raise ValueError(f"{where} ({spec['term']}): {err}") from err


def from_config(section: Mapping[str, Any]) -> Objective:
    """Build from a recipe's ``objective`` section; errors name the offending key."""
    kind = section.get("type") if isinstance(section, Mapping) else None
    if kind == "terms":
        terms = section.get("terms")
        if not isinstance(terms, list) or not terms:
            raise ValueError("objective.terms must be a non-empty list of {term: NAME, ...} entries")
        return Objective([_build_term(spec, i) for i, spec in enumerate(terms)], name="terms")
    if kind not in PRESETS:
        raise ValueError(f"objective.type must be one of {sorted([*PRESETS, 'terms'])}, got {kind!r}")
    kwargs = {k: v for k, v in section.items() if k != "type"}
    try:
        return PRESETS[kind](**kwargs)
    except TypeError as err:
        raise ValueError(f"objective ({kind}): {err}") from err
