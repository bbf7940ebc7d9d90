"""The name mapping from the reference NCSN++ generator (DDGAN / WaveDiff ``NCSNpp``) onto gdiff's ``ncsnpp``.

The reference keeps its layers in one flat ``all_modules`` list, indexed in the order its forward pass uses
them, plus the latent mapping ``z_transform``. For the configuration both reference repositories train
(positional time embedding, BigGAN residual blocks, residual input pyramid, no output pyramid) that order is:

    0, 1            time MLP: Linear(C, 4C), Linear(4C, 4C)                -> time_embed.mlp.0, time_embed.mlp.2
    2               input 3x3 conv                                         -> conv_in
    per level l     num_res_blocks x (residual block [, attention])       -> enc_blocks.l.b [, enc_attn.l.b]
                    except at the last level: down block, pyramid conv     -> enc_down.l, pyramid.l.conv
                    (the pyramid conv's parameters sit under ``Conv2d_0``)
    middle          residual block, attention, residual block            -> mid.0, mid_attn, mid.1
    per level from the bottom (i = 0 ..)
                    num_res_blocks + 1 residual blocks [, attention]      -> dec_blocks.i.b [, dec_attn.i]
                    except at the top level: up block                      -> dec_up.i
    last two        GroupNorm, output 3x3 conv                             -> norm_out, conv_out
    z_transform.(2k + 1)  the k-th Linear of the mapping (0: PixelNorm)    -> mapping.mlp.(2k)

Inside a residual block: GroupNorm_0.style, Conv_0, Dense_0, GroupNorm_1.style, Conv_1, Conv_2 (shortcut) ->
norm0.style, conv0, temb, norm1.style, conv1, skip. Attention: GroupNorm_0 -> norm; the reference's separate
q, k, v projections ``NIN_0..2`` (weights W [C_in, C_out] applied as ``x @ W``) stack into gdiff's one 1x1
``qkv`` conv (weight ``[W_0^T; W_1^T; W_2^T]`` [3C, C, 1, 1]); ``NIN_3`` -> ``out`` (W_3^T).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from gdiff.nets.ncsnpp import NCSNppGenerator

RESBLOCK = {"GroupNorm_0.style": "norm0.style", "Conv_0": "conv0", "Dense_0": "temb",
            "GroupNorm_1.style": "norm1.style", "Conv_1": "conv1", "Conv_2": "skip"}


def _slots(G: NCSNppGenerator) -> Iterator[tuple[str, nn.Module]]:
    """(gdiff module name, module) in the order of the reference's ``all_modules`` (the pyramid conv is the
    reference's ``Downsample(with_conv=True, fir=True)``, whose parameters sit under ``Conv2d_0``)."""
    yield "time_embed.mlp.0", G.time_embed.mlp[0]
    yield "time_embed.mlp.2", G.time_embed.mlp[2]
    yield "conv_in", G.conv_in
    for level, (blocks, attns) in enumerate(zip(G.enc_blocks, G.enc_attn, strict=True)):
        for b, (block, attn) in enumerate(zip(blocks, attns, strict=True)):
            yield f"enc_blocks.{level}.{b}", block
            if not isinstance(attn, nn.Identity):
                yield f"enc_attn.{level}.{b}", attn
        if level < len(G.enc_down):
            yield f"enc_down.{level}", G.enc_down[level]
            yield f"pyramid.{level}.conv", G.pyramid[level].conv
    yield "mid.0", G.mid[0]
    yield "mid_attn", G.mid_attn
    yield "mid.1", G.mid[1]
    for i, (blocks, attn) in enumerate(zip(G.dec_blocks, G.dec_attn, strict=True)):
        for b, block in enumerate(blocks):
            yield f"dec_blocks.{i}.{b}", block
        if not isinstance(attn, nn.Identity):
            yield f"dec_attn.{i}", attn
        if i < len(G.dec_up):
            yield f"dec_up.{i}", G.dec_up[i]
    yield "norm_out", G.norm_out
    yield "conv_out", G.conv_out


def _nin(W: Tensor) -> Tensor:
    """A reference NIN weight [C_in, C_out] (``x @ W``) as a 1x1 conv weight [C_out, C_in, 1, 1]."""
    return W.t()[:, :, None, None]


def mapping_rules(G: NCSNppGenerator) -> dict[str, tuple[tuple[str, ...], Callable[..., Tensor]]]:
    """gdiff state-dict key -> (reference keys, function of their tensors giving the gdiff tensor)."""
    if G.class_embed is not None or G.mapping is None:
        raise ValueError("the reference generators are unconditional with a latent z: generator needs "
                         "num_classes 0 and z_dim > 0")
    same = lambda x: x  # noqa: E731
    rules: dict[str, tuple[tuple[str, ...], Callable[..., Tensor]]] = {}
    for m, (name, module) in enumerate(_slots(G)):
        ref = f"all_modules.{m}"
        if isinstance(module, nn.Module) and hasattr(module, "conv0"):  # residual block
            for ref_part, part in RESBLOCK.items():
                for p in ("weight", "bias"):
                    if f"{part}.{p}" in dict(module.named_parameters()):
                        rules[f"{name}.{part}.{p}"] = ((f"{ref}.{ref_part}.{p}",), same)
        elif hasattr(module, "qkv"):  # attention
            for p in ("weight", "bias"):
                rules[f"{name}.norm.{p}"] = ((f"{ref}.GroupNorm_0.{p}",), same)
            rules[f"{name}.qkv.weight"] = (tuple(f"{ref}.NIN_{j}.W" for j in range(3)),
                                           lambda *ws: torch.cat([_nin(w) for w in ws]))
            rules[f"{name}.qkv.bias"] = (tuple(f"{ref}.NIN_{j}.b" for j in range(3)), lambda *bs: torch.cat(bs))
            rules[f"{name}.out.weight"] = ((f"{ref}.NIN_3.W",), _nin)
            rules[f"{name}.out.bias"] = ((f"{ref}.NIN_3.b",), same)
        else:  # Linear, Conv2d, GroupNorm: same parameter names
            inner = "Conv2d_0." if name.startswith("pyramid.") else ""
            for p, _ in module.named_parameters():
                rules[f"{name}.{p}"] = ((f"{ref}.{inner}{p}",), same)
    for k, layer in enumerate(G.mapping.mlp[::2]):
        for p, _ in layer.named_parameters():
            rules[f"mapping.mlp.{2 * k}.{p}"] = ((f"z_transform.{2 * k + 1}.{p}",), same)
    return rules


def convert_state(G: NCSNppGenerator, reference: dict[str, Tensor], source: str = "checkpoint") -> dict[str, Tensor]:
    """The gdiff state dict of ``G`` holding the reference weights; float32 tensors.

    Every reference key must be used and every gdiff key filled with a tensor of its shape: a ValueError names
    the missing, unused and mis-shaped keys (and ``source``, the checkpoint).
    """
    rules = mapping_rules(G)
    target = G.state_dict()
    if set(rules) != set(target):  # the mapping covers the network exactly (a gdiff-side invariant)
        raise ValueError(f"internal: the NCSN++ name mapping does not cover {sorted(set(target) ^ set(rules))[:5]}")
    wanted = [k for keys, _ in rules.values() for k in keys]
    missing = [k for k in wanted if k not in reference]
    unused = sorted(set(reference) - set(wanted))
    out, shapes = {}, []
    if not missing:
        for key, (keys, fn) in rules.items():
            value = fn(*(reference[k].float() for k in keys))
            if value.shape != target[key].shape:
                shapes.append(f"{'+'.join(keys)} {tuple(reference[keys[0]].shape)} -> {key} needs "
                              f"{tuple(target[key].shape)}")
            out[key] = value.contiguous()
    if missing or unused or shapes:
        parts = [f"{label} ({len(items)}): {items[:6]}{' ...' if len(items) > 6 else ''}"
                 for label, items in (("missing keys", missing), ("unexpected keys", unused),
                                      ("mismatched shapes", shapes)) if items]
        raise ValueError(f"{source} does not fit the recipe's generator section (reference names, DDP prefix "
                         f"removed): " + "; ".join(parts))
    return out
