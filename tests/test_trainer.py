"""The Trainer: it learns, its G and D steps touch only their own network, checkpoints resume atomically."""

from __future__ import annotations

import json

import pytest
import torch

from gdiff import checkpoints, recipes
from gdiff.trainer import Trainer

TINY = {
    "data": {"type": "mixture", "dim": 1, "modes_per_side": 2, "spacing": 4.0, "std": 0.25, "per_mode": 2000},
    "diffusion": {"schedule": "cosine", "num_steps": 2},
    "generator": {"type": "toy_generator", "width": 64, "depth": 2, "time_dim": 16},
    "discriminator": {"type": "toy_discriminator", "width": 64, "depth": 2, "time_dim": 16, "pairwise": False,
                      "heads": ["regression"]},
    "objective": {"type": "siddm", "afd_weight": 1.0},
    "optim": {"lr_g": 1e-3, "lr_d": 1e-3, "betas": [0.5, 0.9]},
    "train": {"max_steps": 1000, "batch_size": 128, "seed": 0, "ema_decay": 0.99, "log_every": 100, "threads": 1,
              "trackers": []},
    "eval": {"num_samples": 2000},
}


def tiny(*overrides: str) -> recipes.Recipe:
    return recipes.from_dict(recipes.apply_overrides(TINY, overrides))


def test_learns_a_two_mode_mixture(tmp_path):
    """SIDDM at T=2 turns N(0, 1) into both modes of a 1-D mixture in about 10 s of CPU."""
    Trainer(tiny(), tmp_path).train()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["modes_covered"] == 2
    # an untrained generator gives a unimodal blob with ~35% of samples within 3 std of a mode
    assert metrics["high_quality"] > 0.6
    assert metrics["kl_modes_uniform"] < 0.05
    assert metrics["frechet"] < 0.2
    assert {p.name for p in (tmp_path / "generator").iterdir()} >= {"model.safetensors", "config.json"}
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(100, 1001, 100))


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("objective", ["siddm", "ddgan"])
def test_each_step_updates_only_its_network(tmp_path, objective):
    overrides = () if objective == "siddm" else (
        "objective={type: ddgan, r1_gamma: 0.1, lazy_reg: 1}", "discriminator.pairwise=true",
        "discriminator.heads=[]", "diffusion.schedule=vp")
    trainer = Trainer(tiny(*overrides), tmp_path)
    g0, d0 = _params(trainer.G), _params(trainer.D)
    snapshot = {}
    generator_loss = trainer.objective.generator_loss

    def spy(G, D, *args, **kwargs):  # runs at the start of the G step, after the D step
        snapshot["g"], snapshot["d"] = _params(G), _params(D)
        snapshot["d_frozen"] = not any(p.requires_grad for p in D.parameters())
        return generator_loss(G, D, *args, **kwargs)

    trainer.objective.generator_loss = spy
    trainer.train_step(*next(trainer.stream))
    assert _same(snapshot["g"], g0), "the D step changed the generator"
    assert not _same(snapshot["d"], d0), "the D step did not update the discriminator"
    assert snapshot["d_frozen"], "D must be frozen during the G step"
    assert _same(_params(trainer.D), snapshot["d"]), "the G step changed the discriminator"
    assert not _same(_params(trainer.G), g0), "the G step did not update the generator"
    assert all(p.requires_grad for p in trainer.D.parameters()), "D must be unfrozen after the G step"


def test_resume_continues_from_the_last_checkpoint(tmp_path):
    recipe = tiny("train.max_steps=30", "train.checkpoint_every=10", "train.keep_checkpoints=2")
    first = Trainer(recipe, tmp_path)
    first.train()
    saved = sorted(p.name for p in checkpoints.checkpoint_dir(tmp_path).iterdir())
    assert saved == ["step_000000020", "step_000000030"]

    second = Trainer(tiny("train.max_steps=40"), tmp_path)
    assert second.resume() and second.step == 30
    assert _same(_params(second.G), _params(first.G)) and _same(_params(second.D), _params(first.D))
    assert _same(_params(second.ema.module), _params(first.ema.module))
    second.train()
    assert checkpoints.step_of(checkpoints.latest(tmp_path)) == 40
    assert json.loads((tmp_path / "metrics.json").read_text())["step"] == 40


def test_resume_refuses_a_different_recipe(tmp_path):
    Trainer(tiny("train.max_steps=5"), tmp_path).train()
    with pytest.raises(ValueError, match="optim.lr_g"):
        Trainer(tiny("train.max_steps=10", "optim.lr_g=0.5"), tmp_path).train()


def test_interrupted_checkpoint_leaves_the_previous_one(tmp_path):
    (checkpoints.staging_dir(tmp_path, 1) / "state").write_text("one")
    checkpoints.commit(checkpoints.staging_dir(tmp_path, 1, create=False), keep=2)
    (checkpoints.staging_dir(tmp_path, 2) / "state").write_text("half")  # a save killed before its commit
    latest = checkpoints.latest(tmp_path)
    assert checkpoints.step_of(latest) == 1 and (latest / "state").read_text() == "one"


def test_bad_mixed_precision_is_named(tmp_path):
    with pytest.raises(ValueError, match="train.mixed_precision"):
        Trainer(tiny("train.mixed_precision=fp8"), tmp_path)


def test_learning_rates_follow_the_decay(tmp_path):
    trainer = Trainer(tiny("train.max_steps=8", "optim.lr_decay=linear", "optim.decay_start=0.5"), tmp_path)
    seen, train_step = [], trainer.train_step

    def recording_step(*batch):
        parts = train_step(*batch)
        seen.append((trainer.opt_g.param_groups[0]["lr"], trainer.opt_d.param_groups[0]["lr"]))
        return parts

    trainer.train_step = recording_step
    trainer.train()
    factors = [1, 1, 1, 1, 1, 0.75, 0.5, 0.25]  # the rates steps 0..7 used
    assert seen == [pytest.approx((1e-3 * f, 1e-3 * f)) for f in factors]
    with pytest.raises(ValueError, match="optim.lr_decay"):
        Trainer(tiny("optim.lr_decay=exponential"), tmp_path / "bad")
    with pytest.raises(ValueError, match="optim.lr_min"):
        Trainer(tiny("optim.lr_min=0.01"), tmp_path / "bad")


def test_metrics_every_n_steps_go_to_the_log(tmp_path):
    Trainer(tiny("train.max_steps=30", "train.log_every=20", "eval.every=15", "eval.num_samples=500"), tmp_path).train()
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [15, 20, 30]
    assert "eval/frechet" in log[0] and "eval/modes_covered" in log[0]
    assert "eval/frechet" not in log[1] and "eval/frechet" not in log[2]  # the end goes to metrics.json


def test_micro_batches_accumulate_to_the_full_batch_gradient(tmp_path):
    """With a deterministic loss, 4 micro-batches of 32 give the gradients of one batch of 128."""
    from gdiff.objectives import Losses

    def d_loss(G, D, schedule, x0, labels, step, **kwargs):
        t = torch.full((len(x0),), 0.5)
        total = D(x0, t).square().mean() + 0 * sum(p.sum() for p in G.parameters())
        return Losses(total, {"d/total": total.detach()})

    def g_loss(G, D, schedule, x0, labels, step):
        z = torch.ones(len(x0), G.z_dim)
        total = G(x0, torch.full((len(x0),), 0.5), z).square().mean()
        return Losses(total, {"g/total": total.detach()})

    params = []
    for micro in (0, 32):
        trainer = Trainer(tiny(f"train.micro_batch={micro}"), tmp_path / str(micro))
        trainer.objective.discriminator_loss, trainer.objective.generator_loss = d_loss, g_loss
        batch = next(trainer.stream)
        trainer.train_step(*batch)
        nets = (trainer.G, trainer.D)
        params.append([p.grad.clone() for net in nets for p in net.parameters() if p.grad is not None])
    assert all(torch.allclose(a, b, atol=1e-7, rtol=1e-5) for a, b in zip(*params, strict=True))
    assert any(g.abs().max() > 1e-4 for g in params[0])


def test_pictures_metadata_and_images_per_second(tmp_path):
    Trainer(tiny("data.dim=2", "train.max_steps=20", "train.log_every=10", "train.sample_every=10"), tmp_path).train()
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step_000000010.png", "step_000000020.png"]
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert all(r["images_per_s"] > 0 for r in log)
    meta = json.loads((tmp_path / "metadata.json").read_text())["starts"]
    assert len(meta) == 1 and meta[0]["world_size"] == 1 and meta[0]["device"] == "cpu"
