"""gdiff.sections: recipe keys bound and type-checked against a factory's signature, before it is called."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Literal

import pytest

from gdiff import sections


class _Base:
    def __init__(self, width: int, depth: int = 2, scale: float = 1.0, flag: bool = False,
                 heads: Sequence[str] = ("a",), mult: tuple[int, ...] = (1,), pair: tuple[float, float] = (0, 1),
                 mode: Literal["x0", "eps"] = "x0", maybe: int | None = None, path: str | os.PathLike | None = None,
                 table: dict[str, int] | None = None, names: list[str] | None = None, free=None) -> None:
        self.kwargs = {"width": width, "depth": depth, "scale": scale, "flag": flag, "heads": heads, "mult": mult,
                       "pair": pair, "mode": mode, "maybe": maybe, "path": path, "table": table, "names": names,
                       "free": free}


class _Child(_Base):
    """``**kwargs`` go to the base: the base's keys are known and checked."""

    def __init__(self, extra: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.extra = extra


def _made(**kwargs):
    return sections.call(_Base, kwargs, "generator").kwargs


def test_good_values_are_passed_and_normalised():
    out = _made(width=3, depth=4.0, scale=2, flag=True, heads=["x", "y"], mult=[1, 2.0], pair=[0.5, 1],
                mode="eps", maybe=None, path="/tmp", table={"a": 1}, names=("p",), free=object)
    assert out["depth"] == 4 and type(out["depth"]) is int, "an exact integral float is that integer"
    assert out["scale"] == 2 and out["mult"] == (1, 2) and type(out["mult"][1]) is int
    assert out["heads"] == ["x", "y"] and out["pair"] == (0.5, 1) and out["names"] == ["p"]
    assert out["free"] is object and out["path"] == "/tmp"
    assert _made(width=1, maybe=7, path=os.path.expanduser("~"))["maybe"] == 7


@pytest.mark.parametrize("kwargs, message", [
    ({"width": 32.5}, "recipe key generator.width must be int (an integer), got 32.5"),
    ({"width": "abc"}, "recipe key generator.width must be int (an integer), got 'abc'"),
    ({"width": True}, "generator.width must be int (an integer), got True (YAML reads unquoted"),
    ({"width": 1, "scale": "big"}, "generator.scale must be float (a number), got 'big'"),
    ({"width": 1, "scale": False}, "generator.scale must be float"),
    ({"width": 1, "flag": 1}, "generator.flag must be bool (true or false), got 1"),
    ({"width": 1, "heads": "regression"}, "generator.heads must be a list of strings, got 'regression'"),
    ({"width": 1, "heads": ["a", 3]}, "generator.heads must be a list of strings"),
    ({"width": 1, "mult": [1, 2.5]}, "generator.mult must be a list of integers, got [1, 2.5]"),
    ({"width": 1, "mult": "12"}, "generator.mult must be a list of integers"),
    ({"width": 1, "pair": [1]}, "generator.pair must be a list of 2 numbers"),
    ({"width": 1, "mode": "v"}, "generator.mode must be one of ['x0', 'eps'], got 'v'"),
    ({"width": 1, "maybe": 1.5}, "generator.maybe must be int (an integer) or null"),
    ({"width": 1, "path": 3}, "generator.path must be str (a string) or a path or null, got 3"),
    ({"width": 1, "table": {"a": "b"}}, "generator.table must be"),
    ({"width": 1, "names": "abc"}, "generator.names must be a list of strings or null"),
    ({"widht": 1}, "unknown recipe key generator.widht (did you mean 'width'?); known keys of 'generator': "
                   "['width', 'depth'"),
    ({}, "recipe key generator.width is required"),
])
def test_bad_values_name_the_key(kwargs, message):
    with pytest.raises(ValueError) as info:
        _made(**kwargs)
    assert message in str(info.value)


def test_kwargs_class_knows_its_bases_keys():
    assert sections.call(_Child, {"width": 2, "extra": "e"}, "net").kwargs["width"] == 2
    with pytest.raises(ValueError, match=r"net\.width must be int"):
        sections.call(_Child, {"width": 2.5}, "net")
    with pytest.raises(ValueError, match=r"unknown recipe key net\.bogus"):
        sections.call(_Child, {"width": 2, "bogus": 1}, "net")


def test_plain_kwargs_function_accepts_any_key_unchecked():
    def factory(a: int, **rest):
        return a, rest

    assert sections.call(factory, {"a": 1, "anything": "x"}, "s") == (1, {"anything": "x"})


def test_unresolvable_annotation_is_unchecked():
    def factory(a: NotDefinedAnywhere = None, b: int = 0):  # noqa: F821
        return a, b

    assert sections.call(factory, {"a": "x", "b": 2.0}, "s") == ("x", 2)
    with pytest.raises(ValueError, match=r"s\.b must be int"):
        sections.call(factory, {"b": "x"}, "s")


def test_an_error_inside_the_factory_keeps_its_type():
    def factory(width: int = 1):
        return len(width)  # a bug: TypeError raised by the factory itself

    with pytest.raises(TypeError, match="has no len"):
        sections.call(factory, {"width": 3}, "generator")


def test_a_value_error_inside_the_factory_gains_the_section():
    """A factory's own range check keeps its type and traceback; the message gains the section (or the key)."""
    def factory(num_steps: int = 1, size: int = 1):
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        if size < 1:
            raise ValueError("sizes below 1 make no network")
        raise ValueError("diffusion.size is already named")

    for kwargs, message in [({"num_steps": 0}, "diffusion.num_steps must be >= 1, got 0"),
                            ({"size": 0}, "diffusion: sizes below 1 make no network"),
                            ({}, "diffusion.size is already named")]:
        with pytest.raises(ValueError) as info:
            sections.call(factory, kwargs, "diffusion")
        assert str(info.value) == message
        assert info.traceback[-1].name == "factory"  # raised where it was, not re-made


def test_the_module_is_torch_free():
    import subprocess
    import sys

    code = "import sys, gdiff.sections, gdiff.recipes; assert 'torch' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------------ the three builders
TOY_G = {"type": "toy_generator", "width": 8, "depth": 1, "z_dim": 2}


@pytest.mark.parametrize("builder, section, message", [
    ("nets", {**TOY_G, "width": 32.5}, "recipe key generator.width must be int (an integer), got 32.5"),
    ("nets", {**TOY_G, "width": "abc"}, "recipe key generator.width must be int"),
    ("nets", {**TOY_G, "widht": 8}, "unknown recipe key generator.widht (did you mean 'width'?)"),
    ("nets", {**TOY_G, "z_dim": 2.5}, "generator.z_dim must be int (an integer) or null"),
    ("nets", {"type": "toy_discriminator", "width": 8, "heads": "regression"},
     "generator.heads must be a list of strings, got 'regression'"),
    ("nets", {"type": "ncsnpp", "channel_mult": "1222"}, "generator.channel_mult must be a list of integers"),
    ("nets", {"type": "wavelet_ncsnpp", "channels": 16.5}, "generator.channels must be int"),
    ("nets", {"type": "unet", "num_head_channels": "64"}, "generator.num_head_channels must be int"),
    ("data", {"type": "mog25", "per_mode": 3.5}, "recipe key data.per_mode must be int (an integer), got 3.5"),
    ("data", {"type": "mog25", "std": "small"}, "recipe key data.std must be float"),
    ("data", {"type": "mixture", "normalize": "yes"}, "recipe key data.normalize must be bool"),
    ("data", {"type": "digits", "resolutoin": 16}, "unknown recipe key data.resolutoin (did you mean 'resolution'?)"),
    ("data", {"type": "image_folder", "root": 3}, "recipe key data.root must be str (a string) or a path or null"),
    ("data", {"type": "mog2"}, "data.type must be one of"),
    ("objective", {"type": "ddgan", "lazy_reg": 2.5}, "recipe key objective.lazy_reg must be int"),
    ("objective", {"type": "siddm", "entropy": "no"}, "recipe key objective.entropy must be bool"),
    ("objective", {"type": "siddm", "afd_weight": "1"}, "recipe key objective.afd_weight must be float"),
    ("objective", {"type": "ufogen", "reconstrution": "l1"}, "unknown recipe key objective.reconstrution"),
    ("objective", {"type": "terms", "terms": [{"term": "r1"}]}, "recipe key objective.terms[0].gamma is required"),
    ("objective", {"type": "terms", "terms": [{"term": "r1", "gamma": 1, "every": 1.5}]},
     "recipe key objective.terms[0].every must be int"),
    ("objective", {"type": "terms", "terms": [{"term": "adversarial", "pairwise": 1}]},
     "objective.terms[0].pairwise must be bool"),
    ("objective", {"type": "terms", "terms": [{"term": "adversarial", "pairwise": True}], "d_input": 0},
     "recipe key objective.d_input must be str"),
])
def test_builders_name_the_bad_key(builder, section, message):
    from gdiff import data, nets, objectives

    build = {"nets": lambda s: nets.build(s, (2,), where="generator"), "data": data.build,
             "objective": objectives.from_config}[builder]
    with pytest.raises(ValueError) as info:
        build(section)
    assert message in str(info.value)


@pytest.mark.parametrize("builder, section, message", [
    ("nets", {**TOY_G, "width": -5}, "generator.width must be >= 1, got -5"),
    ("nets", {**TOY_G, "depth": 0}, "generator.depth must be >= 1, got 0"),
    ("objective", {"type": "siddm", "afd_weight": -1}, "recipe key objective.afd_weight must be >= 0"),
    ("objective", {"type": "ddgan", "r1_gamma": -0.1}, "recipe key objective.r1_gamma must be >= 0"),
    ("objective", {"type": "terms", "terms": [{"term": "denoising", "weight": -2}]},
     "recipe key objective.terms[0].weight must be >= 0"),
])
def test_out_of_range_values_name_the_key(builder, section, message):
    from gdiff import nets, objectives

    build = {"nets": lambda s: nets.build(s, (2,), where="generator"), "objective": objectives.from_config}[builder]
    with pytest.raises(ValueError, match=re.escape(message)):
        build(section)


def test_a_process_range_error_names_the_diffusion_key():
    from gdiff import processes

    with pytest.raises(ValueError, match=r"^diffusion\.num_steps must be an integer >= 1, got 0"):
        processes.from_config({"schedule": "cosine", "num_steps": 0})


def test_builders_accept_integral_floats_and_lists_for_tuples():
    from gdiff import data, nets, objectives

    G = nets.build({**TOY_G, "width": 8.0}, (2,), where="generator")
    assert G.z_dim == 2
    assert len(data.build({"type": "mog25", "per_mode": 4.0})) == 100
    objectives.from_config({"type": "ddgan", "lazy_reg": 1.0e+1})


def test_a_type_error_inside_a_network_is_not_a_recipe_error(monkeypatch):
    from gdiff import nets

    class Broken:
        def __init__(self, data_shape: Sequence[int], num_classes: int = 0) -> None:
            raise TypeError("a bug in the constructor")

    monkeypatch.setitem(nets.REGISTRY, "broken", Broken)
    with pytest.raises(TypeError, match="a bug in the constructor"):
        nets.build({"type": "broken"}, (2,))
