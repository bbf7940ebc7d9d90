"""Make tests/fixtures/convert/: the reference generators and sampler, run from the authors' own code.

The tests of gdiff/convert/ (tests/test_convert*.py) compare gdiff against these files only; this script is the
one place that runs the reference code. It needs local checkouts of the two reference repositories (their
licences are non-commercial: they are read and run here, never copied into gdiff) and, for WaveDiff's network
module and its Haar convention, ``pytorch_wavelets`` and ``PyWavelets``:

    git clone https://github.com/NVlabs/denoising-diffusion-gan /tmp/refs/ddgan
    git clone https://github.com/VinAIResearch/WaveDiff /tmp/refs/wavediff
    pip install --target /tmp/pw pytorch_wavelets PyWavelets
    PYTHONPATH=/tmp/pw python scripts/make_convert_fixtures.py --ddgan /tmp/refs/ddgan --wavediff /tmp/refs/wavediff

Nothing is trained: each reference network is built by the reference code at reduced width, its parameters are
redrawn at random with scales that keep every activation O(1) (the reference's near-zero output layers would
make the outputs ~0 and the comparison empty), rounded to float16 so the fixture stays small, and run once on
fixed inputs in float32 on the CPU. The reference's CUDA ops are JIT-compiled when imported; on the CPU the
reference runs its native upfirdn2d, so the script replaces the compiler with a stub while importing.

Files (safetensors and JSON only):
* ``<case>.weights.safetensors``: the generator's state dict exactly as the reference names it after a DDP run
  (``module.`` prefixes), float16 values;
* ``<case>.io.safetensors``: ``x_small`` (float16; the input x_t is ``x_small`` repeated ``upsample`` times along
  height and width, which keeps the 256-px input small), ``t`` (int64 step indices as the reference passes
  them), ``z`` (float32), ``out`` (the reference output, float32, every ``stride``-th pixel), ``out_sum`` and
  ``out_abs_sum`` (sums over the full output, float64);
* ``sampler_<T>.safetensors``: the reference ``sample_from_model`` chain with a stand-in network: ``x_init``,
  the network outputs ``x0_<i>`` it returned, the inputs ``x_<i>`` and ``t_<i>`` it received, the noises
  ``noise_<i>``, the final sample, all float64 (the reference's schedule code run with float32 mapped to float64),
  plus the reference's own float32 posterior coefficients ``coef1``, ``coef2``, ``var``;
* ``haar.safetensors``: ``pytorch_wavelets`` DWT of a fixed image in WaveDiff's channel layout;
* ``manifest.json``: each case's reference arguments, the matching gdiff generator section and data shape.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import subprocess
import sys
import types
from argparse import Namespace
from pathlib import Path

import torch
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "convert"

# The reference test scripts' argument defaults (test_ddgan.py / test_wddgan.py) that shape the generator.
REFERENCE_DEFAULTS = dict(
    num_channels=3, centered=True, use_geometric=False, beta_min=0.1, beta_max=20.0, num_channels_dae=128,
    n_mlp=3, ch_mult=[1, 2, 2, 2], num_res_blocks=2, attn_resolutions=(16,), dropout=0.0, resamp_with_conv=True,
    conditional=True, fir=True, fir_kernel=[1, 3, 3, 1], skip_rescale=True, resblock_type="biggan",
    progressive="none", progressive_input="residual", progressive_combine="sum", embedding_type="positional",
    fourier_scale=16.0, not_use_tanh=False, image_size=32, nz=100, num_timesteps=4, z_emb_dim=256, patch_size=1)

# Reduced-width versions of the published configurations (README / run.sh commands): only the widths
# (num_channels_dae, nz, z_emb_dim) are smaller; levels, blocks, attention and mapping depth are the published ones.
CASES = {
    "ddgan_cifar10": dict(repo="ddgan", args=dict(num_channels_dae=4, ch_mult=[1, 2, 2, 2], n_mlp=4, nz=8, z_emb_dim=8,
                                                  image_size=32, num_timesteps=4),
                          t=[0, 3], upsample=1, stride=1),
    "ddgan_256": dict(repo="ddgan", args=dict(num_channels_dae=4, ch_mult=[1, 1, 2, 2, 4, 4], n_mlp=3, nz=8,
                                              z_emb_dim=8, image_size=256, num_timesteps=2),
                      t=[1], upsample=8, stride=8),
    "wavediff_cifar10": dict(repo="wavediff", args=dict(num_channels=12, num_channels_dae=4, ch_mult=[1, 2, 2],
                                                        n_mlp=4, nz=8, z_emb_dim=8, image_size=16,
                                                        attn_resolutions=(32,), num_timesteps=4),
                             t=[1, 2], upsample=1, stride=1),
}


def gdiff_section(args: Namespace) -> dict:
    """The gdiff generator section with the reference's architecture (before conversion adds time_input)."""
    sizes = [args.image_size >> i for i in range(len(args.ch_mult))]
    return {"type": "ncsnpp", "channels": args.num_channels_dae, "channel_mult": list(args.ch_mult),
            "num_res_blocks": args.num_res_blocks,
            "attention_resolutions": [r for r in args.attn_resolutions if r in sizes],
            "dropout": args.dropout, "z_dim": args.nz, "w_dim": args.z_emb_dim, "mapping_layers": args.n_mlp + 1}


def import_reference(root: Path) -> types.ModuleType:
    """The reference's ``score_sde.models.ncsnpp_generator_adagn`` (with the CUDA JIT build stubbed out)."""
    for name in [m for m in sys.modules if m.split(".")[0] in ("score_sde", "DWT_IDWT", "diffusion")]:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    import torch.utils.cpp_extension as cpp

    real_load = cpp.load
    cpp.load = lambda *a, **k: types.SimpleNamespace()  # CPU path: upfirdn2d_native, no compiled op
    try:
        return importlib.import_module("score_sde.models.ncsnpp_generator_adagn")
    finally:
        cpp.load = real_load
        sys.path.remove(str(root))


def redraw_(net: torch.nn.Module, gen: torch.Generator) -> None:
    """Random parameters with O(1) activations, rounded to float16 values (kept as float32)."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.ndim >= 2:
                fan_in = p.shape[0] if name.endswith(".W") else p[0].numel()  # NIN weights are [in, out]
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))
            else:
                p.add_(0.3 * torch.randn(p.shape, generator=gen))
            p.copy_(p.half().float())


def network_case(name: str, spec: dict, roots: dict[str, Path], gen: torch.Generator) -> dict:
    module = import_reference(roots[spec["repo"]])
    args = Namespace(**{**REFERENCE_DEFAULTS, **spec["args"]})
    net = module.NCSNpp(args).eval()
    redraw_(net, gen)
    batch, up = len(spec["t"]), spec["upsample"]
    small = args.image_size // up
    x_small = torch.randn(batch, args.num_channels, small, small, generator=gen).half()
    x_t = x_small.float().repeat_interleave(up, 2).repeat_interleave(up, 3)
    t = torch.tensor(spec["t"], dtype=torch.int64)
    z = torch.randn(batch, args.nz, generator=gen)
    with torch.no_grad():
        out = net(x_t, t, z)
    print(f"{name}: {sum(p.numel() for p in net.parameters()):,} parameters, output std {out.std():.3f}, "
          f"|out| max {out.abs().max():.3f}")
    state = {f"module.{k}": v.detach().half().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(OUT / f"{name}.weights.safetensors"))
    stride = spec["stride"]
    save_file({"x_small": x_small, "t": t, "z": z, "out": out[:, :, ::stride, ::stride].contiguous(),
               "out_sum": out.double().sum().reshape(1), "out_abs_sum": out.double().abs().sum().reshape(1)},
              str(OUT / f"{name}.io.safetensors"))
    return {"repo": spec["repo"], "reference_args": {k: v for k, v in vars(args).items() if not callable(v)},
            "generator": gdiff_section(args), "data_shape": [args.num_channels, args.image_size, args.image_size],
            "num_steps": args.num_timesteps, "upsample": up, "stride": stride}


class Float64Torch(types.ModuleType):
    """``torch`` with ``float32`` meaning float64 and ``randn`` / ``randn_like`` replaying given draws: the
    reference's sampler code, handed this module, runs its own arithmetic in float64 on known noises."""

    def __init__(self, latents: list[torch.Tensor], noises: list[torch.Tensor]) -> None:
        super().__init__("torch")
        self.float32 = torch.float64
        self._latents, self._noises = latents, noises

    def __getattr__(self, name: str):
        return getattr(torch, name)

    def randn(self, *size, **kwargs) -> torch.Tensor:
        return self._latents.pop(0)

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        return self._noises.pop(0)


def reference_chain(root: Path, module: str) -> types.ModuleType:
    """The module holding the reference's ``sample_from_model``: DDGAN's test_ddgan.py, WaveDiff's diffusion.py."""
    import_reference(root)  # the CUDA stub for test_ddgan.py's network import
    import torch.utils.cpp_extension as cpp

    real_load, cpp.load = cpp.load, lambda *a, **k: types.SimpleNamespace()
    sys.path.insert(0, str(root))
    sys.modules.pop(module, None)
    try:
        return importlib.import_module(module)
    finally:
        cpp.load = real_load
        sys.path.remove(str(root))


def sampler_case(ref: types.ModuleType, steps: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    args = Namespace(num_timesteps=steps, beta_min=0.1, beta_max=20.0, use_geometric=False, nz=3)
    shape = (2, 3, 4, 4)
    coeff32 = ref.Posterior_Coefficients(args, "cpu")  # the published float32 coefficients
    x_init = torch.randn(shape, generator=gen, dtype=torch.float64)
    outputs = [torch.tanh(torch.randn(shape, generator=gen, dtype=torch.float64)) for _ in range(steps)]
    noises = [torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(steps)]
    latents = [torch.zeros(shape[0], args.nz, dtype=torch.float64) for _ in range(steps)]
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def network(x: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        seen.append((x.clone(), t.clone()))
        return outputs[len(seen) - 1]

    ref.torch = Float64Torch(latents, list(noises))
    coeff64 = ref.Posterior_Coefficients(args, "cpu")
    final = ref.sample_from_model(coeff64, network, steps, x_init, None, args)
    ref.torch = torch
    tensors = {"x_init": x_init, "final": final, "coef1": coeff32.posterior_mean_coef1,
               "coef2": coeff32.posterior_mean_coef2, "var": coeff32.posterior_variance}
    for k, (x, t) in enumerate(seen):
        tensors.update({f"x_{k}": x, f"t_{k}": t, f"x0_{k}": outputs[k], f"noise_{k}": noises[k]})
    print(f"sampler T={steps} ({ref.__name__}): final std {final.std():.3f}, coefficient dtype "
          f"{coeff64.posterior_mean_coef1.dtype}")
    return tensors


def haar_case(gen: torch.Generator) -> None:
    sys.modules["pkg_resources"] = types.SimpleNamespace(resource_stream=None)  # only its dtcwt part needs it
    from pytorch_wavelets import DWTForward

    image = torch.randn(2, 3, 8, 8, generator=gen, dtype=torch.float64)
    low, (high,) = DWTForward(J=1, mode="zero", wave="haar").double()(image)
    bands = torch.cat([low, high[:, :, 0], high[:, :, 1], high[:, :, 2]], dim=1)  # as train_wddgan.py stacks them
    save_file({"image": image, "subbands": bands}, str(OUT / "haar.safetensors"))


def commit(root: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ddgan", type=Path, required=True, help="checkout of NVlabs/denoising-diffusion-gan")
    parser.add_argument("--wavediff", type=Path, required=True, help="checkout of VinAIResearch/WaveDiff")
    opts = parser.parse_args()
    roots = {"ddgan": opts.ddgan.resolve(), "wavediff": opts.wavediff.resolve()}
    OUT.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    manifest = {"reference_commits": {k: commit(v) for k, v in roots.items()}, "cases": {}}
    for name, spec in CASES.items():
        manifest["cases"][name] = network_case(name, spec, roots, gen)
    for steps in (2, 4):
        state = gen.get_state()
        tensors = sampler_case(reference_chain(roots["ddgan"], "test_ddgan"), steps, gen)
        gen.set_state(state)
        again = sampler_case(reference_chain(roots["wavediff"], "diffusion"), steps, gen)
        assert all(torch.equal(tensors[k], again[k]) for k in tensors), "the two repositories' chains differ"
        save_file(tensors, str(OUT / f"sampler_{steps}.safetensors"))
    haar_case(gen)
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
