"""Recipes: every shipped recipe loads and builds; bad recipes fail with errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gdiff import data, nets, objectives, recipes
from gdiff.diffusion import Schedule

RECIPES = sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml"))
DATA_SHAPES = {"mog25": ((2,), 0), "mixture": None}


def test_recipes_exist():
    names = {p.stem for p in RECIPES}
    assert {"mog25_siddm", "mog25_ddgan", "mog25_siddm_no_afd"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_shipped_recipe_builds(path):
    raw = recipes.parse_yaml(path.read_text())
    if not all(section in raw for section in recipes.BUILT_SECTIONS):
        pytest.skip(f"{path.name} holds only some sections so far")
    recipe = recipes.load(path)
    Schedule.from_config(recipe.diffusion)
    objective = objectives.from_config(recipe.objective)
    if recipe.data["type"] in ("mog25", "mixture"):
        source = data.build(recipe.data)
        shape, classes = source.data_shape, source.num_classes
    else:  # image data: build the networks without their weights
        shape, classes = tuple(recipe.data["shape"]), recipe.data.get("num_classes", 0)
    with torch.device("meta"):
        G = nets.build(recipe.generator, shape, classes, "generator")
        D = nets.build(recipe.discriminator, shape, classes, "discriminator")
    assert G.z_dim > 0
    objective.check(D)


def test_overrides_set_nested_values_and_parse_yaml():
    raw = {"train": {"max_steps": 5}, "objective": {"type": "siddm"}}
    out = recipes.apply_overrides(raw, ["train.max_steps=7", "objective.afd_weight=5e-1", "optim.betas=[0.5, 0.9]",
                                        "objective.entropy=false"])
    assert out == {"train": {"max_steps": 7}, "objective": {"type": "siddm", "afd_weight": 0.5, "entropy": False},
                   "optim": {"betas": [0.5, 0.9]}}
    assert raw["train"]["max_steps"] == 5, "overrides must not modify their input"


GOOD = recipes.parse_yaml((Path(__file__).parents[1] / "recipes" / "mog25_siddm.yaml").read_text())


@pytest.mark.parametrize("overrides, match", [
    (["train.bach_size=3"], "train.bach_size"),
    (["train.max_steps=ten"], "train.max_steps"),
    (["train.max_steps=1.5"], "train.max_steps"),
    (["optim.betas=[0.5]"], "optim.betas"),
    (["trian.max_steps=3"], "unknown recipe section"),
    (["generator=7"], "generator"),
    (["train=3"], "'train' must be a mapping"),
])
def test_bad_recipe_keys_are_named(overrides, match):
    with pytest.raises(ValueError, match=match):
        recipes.from_dict(recipes.apply_overrides(GOOD, overrides))


@pytest.mark.parametrize("overrides, match", [
    (["generator.type=resnet"], "generator.type"),
    (["generator.widht=3"], "generator"),
    (["discriminator.heads=[classifier]"], "discriminator.heads"),
    (["diffusion.schedule=linear"], "diffusion.schedule"),
    (["diffusion.num_steps=0"], "num_steps"),
    (["data.type=cifar"], "data.type"),
    (["data.per_mode=0"], "data.per_mode"),
])
def test_bad_built_sections_are_named(overrides, match, tmp_path):
    from gdiff.trainer import Trainer

    recipe = recipes.from_dict(recipes.apply_overrides(GOOD, overrides))
    with pytest.raises(ValueError, match=match):
        Trainer(recipe, tmp_path)


def test_missing_file_and_bad_override():
    with pytest.raises(FileNotFoundError, match="nowhere.yaml"):
        recipes.load("nowhere.yaml")
    with pytest.raises(ValueError, match="key.path=value"):
        recipes.apply_overrides({}, ["train.max_steps"])
