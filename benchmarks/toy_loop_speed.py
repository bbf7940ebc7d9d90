"""25-Gaussians training-loop speed of a gdiff checkout: iterations/s of ``mog25_siddm`` after a warm-up.

    OMP_NUM_THREADS=1 python benchmarks/toy_loop_speed.py CHECKOUT RUN_DIR

Times 400 steps (after 50 warm-up steps) of the Trainer of ``CHECKOUT`` (a gdiff source tree, e.g. a
``git worktree`` of an older commit), so that two versions can be compared by alternating runs on one machine.
Works with the Trainer before and after the batch stream (``trainer._batch`` / ``trainer.stream``).
"""

import sys
import time

import torch

sys.path.insert(0, sys.argv[1])
from gdiff import recipes  # noqa: E402
from gdiff.trainer import Trainer  # noqa: E402

torch.set_num_threads(1)
trainer = Trainer(recipes.load(sys.argv[1] + "/recipes/mog25_siddm.yaml", ["train.trackers=[]"]), sys.argv[2])
has_stream = hasattr(trainer, "stream")
gen = torch.Generator().manual_seed(0)


def step() -> None:
    trainer.train_step(*(next(trainer.stream) if has_stream else trainer._batch(gen)))
    if has_stream:
        trainer.step += 1
    else:
        trainer.step.value += 1


for _ in range(50):
    step()
start = time.perf_counter()
for _ in range(400):
    step()
print("stream" if has_stream else "before the stream", round(400 / (time.perf_counter() - start), 1), "it/s")
