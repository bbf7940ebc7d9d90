"""gdiff: fast-sampling diffusion GANs (DDGAN, SIDDM) in PyTorch.

    from gdiff import Trainer, objectives, load_recipe
    Trainer(load_recipe("recipes/mog25_siddm.yaml"), "runs/mog25").train()

The public names are imported on first use, so ``python -m gdiff.train`` reports a bad recipe before
torch, Accelerate and timm have loaded.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["Schedule", "Trainer", "diffusion", "load_recipe", "nets", "objectives", "sample"]

# public name -> (module, attribute or None for the module itself)
_EXPORTS = {
    "Schedule": ("gdiff.diffusion", "Schedule"),
    "Trainer": ("gdiff.trainer", "Trainer"),
    "diffusion": ("gdiff.diffusion", None),
    "load_recipe": ("gdiff.recipes", "load"),
    "nets": ("gdiff.nets", None),
    "objectives": ("gdiff.objectives", None),
    "sample": ("gdiff.sampling", "sample"),
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gdiff' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = importlib.import_module(module)
    return value if attribute is None else getattr(value, attribute)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
