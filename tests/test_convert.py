"""Converted reference generators against the reference code's own outputs (tests/fixtures/convert/, made by
scripts/make_convert_fixtures.py from the DDGAN and WaveDiff repositories): networks, sampler chain, Haar layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from gdiff import nets
from gdiff.convert import FAMILIES
from gdiff.convert.family import PIXELS, reorder_channels
from gdiff.convert.ncsnpp_names import convert_state
from gdiff.convert.schedule import reference_diffusion
from gdiff.data.maps import from_config as data_map
from gdiff.export import ExportedGenerator, GeneratorConfig
from gdiff.nets.conditioning import index_embedding
from gdiff.sampling import sample

FIXTURES = Path(__file__).parent / "fixtures" / "convert"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
CASES = sorted(MANIFEST["cases"])


def reference_weights(name: str) -> dict[str, torch.Tensor]:
    return {k.removeprefix("module."): v for k, v in load_file(str(FIXTURES / f"{name}.weights.safetensors")).items()}


def converted(name: str) -> tuple[nn.Module, list[int] | None]:
    """The gdiff generator holding the fixture's reference weights, and the family's channel order."""
    case = MANIFEST["cases"][name]
    family = FAMILIES[case["repo"]]
    section = dict(case["generator"], time_input="index", time_steps=case["num_steps"])
    G = nets.build(section, tuple(case["data_shape"]), 0, "generator").eval()
    weights = convert_state(G, reference_weights(name))
    order = family.channel_order(case["data_shape"][0]) if family.channel_order else None
    G.load_state_dict(reorder_channels(weights, order) if order else weights, strict=True)
    return G, order


@pytest.mark.parametrize("name", CASES)
def test_converted_network_equals_reference(name: str) -> None:
    """Same (x_t, t, z): the converted generator's output equals the reference NCSN++'s to float32 rounding."""
    case = MANIFEST["cases"][name]
    io = load_file(str(FIXTURES / f"{name}.io.safetensors"))
    up, stride = case["upsample"], case["stride"]
    x_ref = io["x_small"].float().repeat_interleave(up, 2).repeat_interleave(up, 3)
    G, order = converted(name)
    x = x_ref[:, order] if order else x_ref
    t = (io["t"].double() + 1) / case["num_steps"]  # reference step index i <-> gdiff grid time (i + 1) / T
    with torch.no_grad():
        out = G(x, t.float(), io["z"])
    out = out[:, order] if order else out  # the order is an involution
    assert io["out"].abs().max() > 0.5  # a non-degenerate reference output
    torch.testing.assert_close(out[:, :, ::stride, ::stride], io["out"], rtol=0, atol=2e-5)
    assert abs(out.double().sum() - io["out_sum"]).item() < 1e-6 * io["out_abs_sum"].item() + 1e-3
    assert abs(out.double().abs().sum() - io["out_abs_sum"]).item() < 1e-6 * io["out_abs_sum"].item() + 1e-3


def test_default_time_embedding_is_unchanged() -> None:
    """The new keys leave the default generator as it was: same parameters, same output."""
    torch.manual_seed(0)
    G = nets.build({"type": "ncsnpp", "channels": 8, "channel_mult": [1, 2], "attention_resolutions": [4],
                    "z_dim": 4, "w_dim": 8, "mapping_layers": 2}, (3, 8, 8), 0, "generator")
    torch.manual_seed(0)
    H = nets.build({"type": "ncsnpp", "channels": 8, "channel_mult": [1, 2], "attention_resolutions": [4],
                    "z_dim": 4, "w_dim": 8, "mapping_layers": 2, "time_input": "continuous"}, (3, 8, 8), 0, "generator")
    x, t, z = torch.randn(2, 3, 8, 8), torch.tensor([0.3, 0.9]), torch.randn(2, 4)
    assert torch.equal(G(x, t, z), H(x, t, z))


def test_index_embedding_formula() -> None:
    """[sin(w_k i), cos(w_k i)], w_k = 10000^(-k / (half - 1)), i = T t - 1, against float64."""
    T, dim = 4, 10
    t = torch.tensor([0.25, 0.5, 0.75, 1.0])
    emb = index_embedding(t, dim, T)
    i = torch.arange(4, dtype=torch.float64)
    w = 10000.0 ** (-torch.arange(5, dtype=torch.float64) / 4)
    expected = torch.cat([torch.sin(i[:, None] * w), torch.cos(i[:, None] * w)], dim=1)
    torch.testing.assert_close(emb.double(), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("bad", [{"time_input": "index"}, {"time_steps": 4}, {"time_input": "steps", "time_steps": 4}])
def test_time_input_keys_are_checked(bad: dict) -> None:
    with pytest.raises(ValueError, match="time_"):
        nets.build({"type": "ncsnpp", "channels": 8, "channel_mult": [1, 2], "attention_resolutions": [], **bad},
                   (3, 8, 8), 0, "generator")


class Replay(nn.Module):
    """A stand-in network returning the fixture's outputs in turn and recording what it was given."""

    z_dim = 1

    def __init__(self, outputs: list[torch.Tensor]) -> None:
        super().__init__()
        self.outputs, self.seen = outputs, []

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, z: torch.Tensor, labels=None) -> torch.Tensor:
        self.seen.append((x_t.clone(), t.clone()))
        return self.outputs[len(self.seen) - 1]


@pytest.mark.parametrize("steps", [2, 4])
def test_sampler_reproduces_reference_chain(steps: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same network outputs and noises: gdiff's sampler on the converted diffusion section walks the reference
    chain in float64 (inputs at every step, step indices, final sample; no noise at the last step)."""
    fx = load_file(str(FIXTURES / f"sampler_{steps}.safetensors"))
    diffusion = reference_diffusion({"schedule": "vp", "num_steps": steps, "beta_min": 0.1, "beta_max": 20.0})
    G = Replay([fx[f"x0_{k}"] for k in range(steps)])
    gen = ExportedGenerator(GeneratorConfig(generator={"type": "replay"}, diffusion=diffusion, data_shape=(3, 4, 4),
                                            num_classes=0, data_map=dict(PIXELS)), G)
    noises = [fx[f"noise_{k}"] for k in range(steps - 1)]  # the reference draws a last noise and masks it out
    shape = fx["x_init"].shape
    real_randn = torch.randn

    def replay_randn(*size, **kwargs):
        size = tuple(size[0]) if len(size) == 1 and not isinstance(size[0], int) else size
        if size == tuple(shape):
            return noises.pop(0)
        return real_randn(*size, **kwargs)

    monkeypatch.setattr(torch, "randn", replay_randn)
    final = sample(gen.G, gen.schedule, fx["x_init"])
    monkeypatch.undo()
    assert not noises
    for k, (x, t) in enumerate(G.seen):
        torch.testing.assert_close(x, fx[f"x_{k}"], rtol=0, atol=1e-12)
        assert torch.equal(torch.round(t.double() * steps) - 1, fx[f"t_{k}"].double())
    torch.testing.assert_close(final, fx["final"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("steps", [2, 4])
def test_reference_float32_coefficients(steps: int) -> None:
    """The published code computes its coefficients in float32 (1 - cumprod cancels: up to 8e-6 relative);
    gdiff's float64 ones agree to that; gdiff's own vp grid (tau_0 noisy) is 6e-5 to 2e-4 off, and not 0 at the end."""
    fx = load_file(str(FIXTURES / f"sampler_{steps}.safetensors"))
    diffusion = reference_diffusion({"schedule": "vp", "num_steps": steps, "beta_min": 0.1, "beta_max": 20.0})
    gen = ExportedGenerator(GeneratorConfig(generator={"type": "replay"}, diffusion=diffusion, data_shape=(3, 4, 4),
                                            num_classes=0, data_map=dict(PIXELS)), Replay([]))
    times = gen.schedule.sampling_times()
    c0, ct, var = gen.schedule.posterior_coefficients(times[:-1], times[1:])
    for ours, name in ((c0, "coef1"), (ct, "coef2"), (var, "var")):
        torch.testing.assert_close(ours, fx[name].double(), rtol=2e-5, atol=1e-9)


def test_reference_schedule_reparameterisation() -> None:
    """abar'(u) of the converted section equals abar(tau(u)) / abar(eps) of the reference, in float64."""
    section = reference_diffusion({"schedule": "vp", "num_steps": 4, "beta_min": 0.1, "beta_max": 20.0})
    u = torch.linspace(0, 1, 11, dtype=torch.float64)
    tau = 1e-3 + (1 - 1e-3) * u
    log_abar = lambda s: -0.5 * 19.9 * s**2 - 0.1 * s  # noqa: E731
    ours = -0.5 * (section["beta_max"] - section["beta_min"]) * u**2 - section["beta_min"] * u
    torch.testing.assert_close(ours, log_abar(tau) - log_abar(torch.tensor(1e-3, dtype=torch.float64)),
                               rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match="diffusion.schedule"):
        reference_diffusion({"schedule": "geometric", "num_steps": 4})
    with pytest.raises(ValueError, match="diffusion.eps"):
        reference_diffusion({"schedule": "vp", "num_steps": 4, "eps": 1e-5})


def test_wavediff_subband_layout() -> None:
    """pytorch_wavelets' subbands (as WaveDiff stacks them) are gdiff's haar map reordered by the family's
    channel order: the converted generator's input and output layouts are the reference's."""
    fx = load_file(str(FIXTURES / "haar.safetensors"))
    family = FAMILIES["wavediff"]
    haar = data_map(family.data_map)
    image = fx["image"]  # in model pixel units: raw = (image + 1) * 127.5
    ours = haar.to_model((image + 1) * 127.5)  # 0.5 * haar(image), gdiff's channel groups
    order = family.channel_order(12)
    torch.testing.assert_close(ours[:, order].double(), fx["subbands"] / 2, rtol=0, atol=1e-5)
