"""Nothing lost: interrupted runs resume bit-identically, a killed save leaves the previous checkpoint, a
non-finite loss stops the run with the last good checkpoint intact, checkpoints load without unpickling."""

from __future__ import annotations

import pytest
import torch

from gdiff import checkpoints, data, recipes
from gdiff.checkpoints import RunError
from gdiff.data.source import DataSource
from gdiff.trainer import Trainer
from tests.test_trainer import TINY


class _TinyImages(DataSource):
    """A 16 x 16 RGB image set with flips, either in memory or read through a DataLoader."""

    hflip, name, data_shape = True, "tiny_images", (3, 16, 16)

    def __init__(self, in_memory: bool = True, size: int = 96) -> None:
        self.in_memory = in_memory
        gen = torch.Generator().manual_seed(0)
        self.raw = torch.randint(0, 256, (size, 3, 16, 16), generator=gen, dtype=torch.uint8)


IMAGES = {**TINY, "data": {"type": "tiny_images"},
          "generator": {"type": "ncsnpp", "channels": 8, "channel_mult": [1, 1], "num_res_blocks": 1,
                        "attention_resolutions": [], "z_dim": 4, "w_dim": 8, "mapping_layers": 1},
          "discriminator": {"type": "ddgan_small", "channels": 8, "t_emb_dim": 16, "pairwise": True},
          "objective": {"type": "ddgan", "r1_gamma": 0.1, "lazy_reg": 3},
          "diffusion": {"schedule": "vp", "num_steps": 2},
          "train": {**TINY["train"], "batch_size": 16, "max_steps": 12}}


@pytest.fixture(autouse=True)
def _tiny_images(monkeypatch):
    monkeypatch.setitem(data.SOURCES, "tiny_images", _TinyImages)


def make(base: dict, *overrides: str) -> recipes.Recipe:
    return recipes.from_dict(recipes.apply_overrides(base, overrides))


def state(trainer: Trainer) -> list[torch.Tensor]:
    modules = [trainer.G, trainer.D, trainer.ema.module]
    return [p.detach().clone() for m in modules for p in m.parameters()] + [trainer.sample(64, seed=1)]


def identical(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("case", ["mixture", "images_in_memory", "images_loader"])
def test_interrupted_run_resumes_bit_identically(tmp_path, case):
    base = TINY if case == "mixture" else IMAGES
    extra = ("train.num_workers=2",) if case == "images_loader" else ()
    steps = 12 if case != "mixture" else 60
    if case == "images_loader":
        data.SOURCES["tiny_images"] = lambda: _TinyImages(in_memory=False)
    full = (f"train.max_steps={steps}", "train.log_every=5", "optim.lr_decay=cosine", "optim.lr_min=1.0e-5", *extra)
    straight = Trainer(make(base, *full), tmp_path / "straight")
    straight.train()

    # the same run, killed right after its checkpoint at half time, then started again
    broken = Trainer(make(base, *full, f"train.checkpoint_every={steps // 2}"), tmp_path / "resumed")
    save = broken.save

    def save_then_die():
        save()
        raise KeyboardInterrupt

    broken.save = save_then_die
    with pytest.raises(KeyboardInterrupt):
        broken.train()
    resumed = Trainer(make(base, *full, f"train.checkpoint_every={steps // 2}"), tmp_path / "resumed")
    resumed.train()
    assert resumed.step == steps
    assert identical(state(straight), state(resumed))


def test_resume_differs_without_the_stream_position(tmp_path):
    """The check above can fail: a resumed run whose batch stream restarts at 0 ends elsewhere."""
    full = ("train.max_steps=12", "train.log_every=4")
    straight = Trainer(make(IMAGES, *full), tmp_path / "a")
    straight.train()
    Trainer(make(IMAGES, "train.max_steps=6", "train.log_every=3"), tmp_path / "b").train()
    resumed = Trainer(make(IMAGES, *full), tmp_path / "b")
    resumed.stream.load_state_dict = lambda s: None  # forget the data position
    resumed.train()
    assert not identical(state(straight), state(resumed))


def test_killed_save_resumes_from_the_previous_checkpoint(tmp_path):
    recipe = make(IMAGES, "train.checkpoint_every=4")
    trainer = Trainer(recipe, tmp_path)
    save = trainer.save

    def dying_save():
        if trainer.step == 8:  # killed while writing: the staging directory is left half-written
            trainer.accelerator.save_state(str(checkpoints.staging_dir(tmp_path, 8)))
            raise KeyboardInterrupt
        save()

    trainer.save = dying_save
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    again = Trainer(recipe, tmp_path)
    assert again.resume() and again.step == 4
    again.train()
    assert checkpoints.step_of(checkpoints.latest(tmp_path)) == 12


def test_non_finite_loss_stops_with_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(make(IMAGES, "train.checkpoint_every=4", "train.log_every=4"), tmp_path)
    generator_loss = trainer.objective.generator_loss

    def poisoned(*args, **kwargs):
        losses = generator_loss(*args, **kwargs)
        if trainer.step == 5:
            losses.parts["g/total"] = losses.parts["g/total"] * float("nan")
        return losses

    trainer.objective.generator_loss = poisoned
    with pytest.raises(FloatingPointError, match="non-finite loss before step 8"):
        trainer.train()
    assert checkpoints.step_of(checkpoints.latest(tmp_path)) == 4
    again = Trainer(make(IMAGES, "train.checkpoint_every=4", "train.log_every=4"), tmp_path)
    assert again.resume() and again.step == 4
    assert all(torch.isfinite(p).all() for p in again.G.parameters())


def test_checkpoints_load_without_unpickling(tmp_path):
    """Replacing a checkpoint's optimiser file by a pickle that runs code: loading refuses it, runs nothing."""
    Trainer(make(IMAGES, "train.max_steps=2"), tmp_path).train()
    latest = checkpoints.latest(tmp_path)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for path in latest.glob("optimizer*.bin"):
        torch.save({"state": Payload()}, path)
    checkpoints.write_manifest(latest)  # the manifest is integrity, not trust: loading itself must refuse
    with pytest.raises(RunError) as info:
        Trainer(make(IMAGES, "train.max_steps=4"), tmp_path).resume()
    assert not marker.exists()
    message = str(info.value)  # one line (the CLI's error: line) naming the checkpoint and the refused global
    assert "\n" not in message and str(latest) in message and "refused by torch.load(weights_only=True)" in message
    assert "GLOBAL" in message and "set to `False`" not in message, message


def test_micro_batch_must_split_into_stddev_groups(tmp_path):
    with pytest.raises(ValueError, match="minibatch-stddev groups of 4"):
        Trainer(make(IMAGES, "train.batch_size=18"), tmp_path)
    Trainer(make(IMAGES, "train.batch_size=24", "train.micro_batch=8"), tmp_path)  # 8 = two groups: accepted
