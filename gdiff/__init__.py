"""gdiff: fast-sampling diffusion GANs (DDGAN, SIDDM) in PyTorch.

    from gdiff import Trainer, objectives, load_recipe, load_generator
    Trainer(load_recipe("recipes/mog25_siddm.yaml"), "runs/mog25").train()
    images = load_generator("runs/mog25").sample(1000)     # the exported EMA generator, RUN/generator/

The public names are imported on first use, so ``python -m gdiff.train`` reports a bad recipe before
torch, Accelerate and timm have loaded.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["ExportedGenerator", "Schedule", "Trainer", "load_generator", "load_recipe", "nets", "objectives",
           "processes", "sampling"]

# public name -> (module, attribute or None for the module itself). No public name is also a submodule's name
# (gdiff.sample, gdiff.train, gdiff.build stay modules): the reverse chain is gdiff.sampling.sample, the one
# build is gdiff.build.build.
_EXPORTS = {
    "ExportedGenerator": ("gdiff.export", "ExportedGenerator"),
    "Schedule": ("gdiff.processes", "Schedule"),
    "Trainer": ("gdiff.trainer", "Trainer"),
    "load_generator": ("gdiff.export", "load_generator"),
    "load_recipe": ("gdiff.recipes", "load"),
    "nets": ("gdiff.nets", None),
    "objectives": ("gdiff.objectives", None),
    "processes": ("gdiff.processes", None),
    "sampling": ("gdiff.sampling", None),
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gdiff' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = importlib.import_module(module)
    return value if attribute is None else getattr(value, attribute)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
