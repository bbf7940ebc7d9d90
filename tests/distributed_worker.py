"""Run under ``accelerate launch`` with 2 processes: train a few steps, then each rank saves what it holds.

Used by tests/test_distributed.py; not a test module itself.
"""

import sys
from pathlib import Path

import torch

from gdiff import recipes
from gdiff.trainer import Trainer

sys.path.insert(0, str(Path(__file__).parent))
from test_trainer import TINY  # noqa: E402

out = Path(sys.argv[1])
recipe = recipes.from_dict(recipes.apply_overrides(TINY, ["train.max_steps=6", "train.checkpoint_every=3",
                                                          *sys.argv[2:]]))
trainer = Trainer(recipe, out / "run")
first_batch = trainer.stream.source.raw[trainer.stream.indices(0)]
trainer.train()
rank = trainer.accelerator.process_index
torch.save({"G": [p.detach() for p in trainer.G.parameters()], "D": [p.detach() for p in trainer.D.parameters()],
            "ema": [p.detach() for p in trainer.ema.module.parameters()], "batch": first_batch,
            "world": trainer.accelerator.num_processes, "local_batch": trainer.stream.batch,
            "noise": torch.randn(8)},
           out / f"rank{rank}.pt")
