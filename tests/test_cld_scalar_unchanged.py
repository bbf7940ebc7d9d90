"""The scalar schedules, the sampler and the objectives are unchanged bit for bit by the forward-process interface
(gdiff issue 18): values computed by the code before that change, stored in tests/data (the scripts that made
them drew the inputs from seeded generators and saved the toy networks' weights with the outputs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gdiff import nets, objectives
from gdiff.processes import Schedule, from_config
from gdiff.sampling import ddim, sample

DATA = Path(__file__).parent / "data"
BUILDERS = {"vp": lambda: Schedule.vp(4), "geometric": lambda: Schedule.geometric(4),
            "cosine": lambda: Schedule.cosine(2), "vp_cont": lambda: Schedule.vp(8, time_sampling="continuous")}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_schedules_bit_for_bit(name):
    ref = load_file(str(DATA / "schedules_before_cld.safetensors"))
    sch = BUILDERS[name]()
    tau, s, noise = ref["tau"], ref["s"], ref["noise"]
    got = {"times": sch.times, "log_abar": sch.log_alpha_bar(tau), "betas": sch.betas,
           "sampling_times": sch.sampling_times(3 if name == "vp_cont" else None)}
    for dt, (a, b) in {"f64": (ref["x0"], ref["xt"]), "f32": (ref["x0"].float(), ref["xt"].float())}.items():
        n = noise.to(a.dtype)
        got[f"{dt}/q_sample"] = sch.q_sample(a, tau, n)
        got[f"{dt}/q_step"] = sch.q_step(a, s, tau, n)
        got[f"{dt}/post_mean"], got[f"{dt}/post_var"] = sch.posterior(a, b, s, tau)
        got[f"{dt}/post_sample"] = sch.posterior_sample(a, b, s, tau, n)
        got[f"{dt}/post_mean_interface"] = sch.posterior_mean(a, b, s, tau)
        ref[f"{name}/{dt}/post_mean_interface"] = ref[f"{name}/{dt}/post_mean"]
    got["sqrt_a"], got["beta"] = sch.step_coefficients(s, tau)
    got["draw_s"], got["draw_t"] = sch.sample_times(16, generator=torch.Generator().manual_seed(3))
    for key, value in got.items():
        assert torch.equal(value, ref[f"{name}/{key}"]), key


def test_from_config_builds_the_same_schedule():
    a = from_config({"schedule": "cosine", "num_steps": 3})
    b = Schedule.from_config({"schedule": "cosine", "num_steps": 3})
    tau = torch.rand(10, dtype=torch.float64)
    assert type(a) is Schedule and torch.equal(a.log_alpha_bar(tau), b.log_alpha_bar(tau))
    assert from_config({"process": "scalar", "schedule": "vp", "num_steps": 2}).name == "vp"


def _networks(ref: dict) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    G = nets.build({"type": "toy_generator", "width": 16, "depth": 2, "time_dim": 8, "z_dim": 2}, (2,), 0, "g")
    Dp = nets.build({"type": "toy_discriminator", "width": 16, "depth": 2, "time_dim": 8, "pairwise": True},
                    (2,), 0, "d")
    Dm = nets.build({"type": "toy_discriminator", "width": 16, "depth": 2, "time_dim": 8, "pairwise": False,
                     "heads": ["regression", "denoised"]}, (2,), 0, "d")
    for prefix, net in (("G.", G), ("Dp.", Dp), ("Dm.", Dm)):
        net.load_state_dict({k[len(prefix):]: v for k, v in ref.items() if k.startswith(prefix)})
    return G, Dp, Dm


@pytest.mark.parametrize("name", ["cosine", "vp"])
def test_sampler_and_objectives_bit_for_bit(name):
    ref = load_file(str(DATA / "chain_before_cld.safetensors"))
    G, Dp, Dm = _networks(ref)
    sch = {"cosine": Schedule.cosine(2), "vp": Schedule.vp(4)}[name]
    gen = torch.Generator().manual_seed(1)
    assert torch.equal(sample(G, sch, torch.randn(8, 2, generator=gen), generator=gen), ref[f"{name}/sample"])
    gen = torch.Generator().manual_seed(1)
    assert torch.equal(ddim(G, sch, torch.randn(8, 2, generator=gen), eta=0.5, generator=gen), ref[f"{name}/ddim"])
    for oname, obj, D in [("ddgan", objectives.ddgan(r1_gamma=1.0, lazy_reg=1), Dp),
                          ("siddm", objectives.siddm(denoise_weight=1.0, afd_weighting="inverse_beta"), Dm)]:
        torch.manual_seed(5)
        assert torch.equal(obj.discriminator_loss(G, D, sch, ref["x0"]).total.detach(), ref[f"{name}/{oname}/d"])
        assert torch.equal(obj.generator_loss(G, D, sch, ref["x0"]).total.detach(), ref[f"{name}/{oname}/g"])
