"""gdiff: fast-sampling diffusion GANs (DDGAN, SIDDM) in PyTorch.

    from gdiff import Trainer, objectives, load_recipe
    Trainer(load_recipe("recipes/mog25_siddm.yaml"), "runs/mog25").train()
"""

from gdiff import diffusion, nets, objectives
from gdiff.diffusion import Schedule
from gdiff.recipes import load as load_recipe
from gdiff.sampling import sample
from gdiff.trainer import Trainer

__version__ = "0.1.0"
__all__ = ["Schedule", "Trainer", "diffusion", "load_recipe", "nets", "objectives", "sample"]
