"""Convert a reference generator checkpoint into a self-describing gdiff generator folder (gdiff/export.py).

A :class:`Family` says what one reference code base fixes beyond the network: how its samples map back to
images (the data map), the channel order of its model space against gdiff's, and which data transform its
recipe must declare. :func:`convert` reads the checkpoint safely (checkpoint.py), builds the recipe's
``ncsnpp`` generator with the reference's time conditioning (``time_input: index``), maps every weight by name
(ncsnpp_names.py), selects the diffusion section that reproduces the reference chain (schedule.py), and writes
``config.json`` + ``model.safetensors``, plus ``recipe.yaml``: the recipe with those generator and diffusion
sections, so ``python -m gdiff.eval DIR`` finds the data set to compare with. Every check runs before the output
folder is created.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from torch import Tensor

from gdiff import nets, recipes
from gdiff.build import ASSUMED_SHAPES
from gdiff.convert.checkpoint import read_state_dict
from gdiff.convert.ncsnpp_names import convert_state
from gdiff.convert.schedule import reference_diffusion
from gdiff.export import ExportedGenerator, GeneratorConfig

RECIPE = "recipe.yaml"
RECIPE_HEADER = "# written by gdiff.convert: the recipe of a converted reference generator (config.json beside it)\n"
PIXELS = {"type": "pixels", "max_value": 255.0}  # torchvision ToTensor + Normalize(0.5, 0.5): x = raw / 127.5 - 1


@dataclass(frozen=True)
class Family:
    """What a reference code base fixes: ``transform`` (the recipe's data.transform, or None), ``model_shape``
    (raw image shape -> model-space shape), ``data_map`` (its config), ``channel_order`` (gdiff model channel c
    is reference channel ``channel_order[c]``; None for the identity)."""

    name: str
    transform: str | None
    model_shape: Callable[[tuple[int, int, int]], tuple[int, int, int]]
    data_map: dict[str, Any]
    channel_order: Callable[[int], list[int]] | None = None


def image_shape(data: dict[str, Any]) -> tuple[int, int, int]:
    """The raw image shape [C, H, W] a recipe's data section implies, without reading the data."""
    kind = data.get("type")
    if kind not in ASSUMED_SHAPES:
        raise ValueError(f"data.type: the reference generators are image models; expected one of "
                         f"{sorted(ASSUMED_SHAPES)}, got {kind!r}")
    try:
        shape, _ = ASSUMED_SHAPES[kind](data)
    except KeyError as err:
        raise ValueError(f"data.{err.args[0]} is needed to know the image size") from None
    return tuple(int(d) for d in shape)


def reorder_channels(state: dict[str, Tensor], order: list[int]) -> dict[str, Tensor]:
    """Re-index the model-space channels: the input conv and first pyramid conv read them, the output conv
    writes them (tanh is applied per channel, so permuting its pre-activations permutes the output)."""
    state = dict(state)
    for key in ("conv_in.weight", "pyramid.0.conv.weight"):
        if key in state:
            state[key] = state[key][:, order].contiguous()
    for key in ("conv_out.weight", "conv_out.bias"):
        state[key] = state[key][order].contiguous()
    return state


def convert(family: Family, checkpoint: str | Path, recipe_path: str | Path, out: str | Path) -> ExportedGenerator:
    """Convert ``checkpoint`` (``netG_<epoch>.pth``) with the architecture of ``recipe_path`` into the folder
    ``out`` and return the loaded generator. Errors (ValueError / FileNotFoundError) come before any write."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out} exists and is not an empty folder")
    recipe = recipes.load(recipe_path)
    state = read_state_dict(checkpoint)
    if recipe.data.get("transform") != family.transform:
        raise ValueError(f"data.transform: {family.name} generators work on "
                         f"{family.transform or 'images'}, the recipe has {recipe.data.get('transform')!r}")
    section = dict(recipe.generator)
    if section.get("type") != "ncsnpp":
        raise ValueError(f"generator.type: {family.name} checkpoints are NCSN++ generators (ncsnpp), "
                         f"got {section.get('type')!r}")
    diffusion = reference_diffusion(recipe.diffusion)
    section.update(time_input="index", time_steps=diffusion["num_steps"])
    for key, value in (("parameterization", "x0"), ("transition", "posterior")):
        if section.get(key, value) != value:
            raise ValueError(f"generator.{key}: the reference generators predict x0 with the posterior transition, "
                             f"got {section[key]!r}")
    shape = family.model_shape(image_shape(recipe.data))
    G = nets.build(section, shape, 0, "generator")
    weights = convert_state(G, state, str(checkpoint))
    if family.channel_order is not None:
        weights = reorder_channels(weights, family.channel_order(shape[0]))
    G.load_state_dict(weights, strict=True)
    config = GeneratorConfig(generator=section, diffusion=diffusion, data_shape=shape, num_classes=0,
                             data_map=dict(family.data_map))
    converted = recipes.from_dict({**recipe.to_dict(), "generator": section, "diffusion": diffusion}, str(recipe_path))
    exported = ExportedGenerator(config, G)
    exported.save_pretrained(out)
    (out / RECIPE).write_text(RECIPE_HEADER + yaml.safe_dump(converted.to_dict(), sort_keys=False))
    return exported
