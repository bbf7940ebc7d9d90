"""Recipe sections -> calls: one torch-free mechanism that checks a section's keys against a factory.

``call(factory, kwargs, where)`` is what every builder (``gdiff.nets.build``, ``gdiff.data.build``,
``gdiff.objectives.from_config``) does with the keys of a recipe section:

1. every key must be a parameter of ``factory`` (``inspect.signature``); an unknown key is a ValueError naming
   ``where.key`` with a did-you-mean and the known keys. A class whose ``__init__`` takes ``**kwargs`` is read
   as passing them to its base class (``super().__init__(**kwargs)``): the bases' parameters are known too.
   A required parameter the section lacks is a ValueError naming ``where.key``;
2. every value must fit the parameter's annotation (:func:`check_value`): ``int`` (an exact integral float
   such as ``1.0e+6`` becomes that int; ``32.5`` and ``true`` are refused), ``float`` (an int becomes a float),
   ``bool``, ``str``, ``None``, ``X | Y``, ``Literal[...]``, ``tuple[T, ...]``, ``tuple[T1, T2]``, ``list[T]``,
   ``Sequence[T]`` (a string is never a sequence of values), ``Mapping[K, V]`` and plain classes (``isinstance``).
   Parameters without an annotation, and annotations the checker does not know (``Any``, ``Callable``), pass
   unchecked;
3. ``factory(**checked)`` runs outside any ``try`` that could change an error's type: an error inside the factory
   keeps its own type and traceback. A ValueError (the factories' own range checks) only gains the section in its
   message (:func:`name_section`): ``num_steps must be >= 1`` becomes ``diffusion.num_steps must be >= 1``.

The message of a type error is ``recipe key WHERE.KEY must be EXPECTED, got VALUE``.
"""

from __future__ import annotations

import collections.abc as abc
import difflib
import functools
import inspect
import numbers
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

_EMPTY = inspect.Parameter.empty
_SEQUENCES = (list, abc.Sequence, abc.MutableSequence, abc.Iterable, abc.Collection)
_MAPPINGS = (dict, abc.Mapping, abc.MutableMapping)
_BOOL_HINT = " (YAML reads unquoted no/yes/on/off as booleans: quote the value)"


def did_you_mean(word: object, options: Iterable[object]) -> str:
    """`` (did you mean 'x'?)`` for the closest option (difflib), or an empty string."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class _Mismatch(Exception):
    """Raised inside :func:`_convert`; turned into the ValueError that names the key."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def describe(hint: Any) -> str:
    """What a value of type ``hint`` is, in words: ``an int``, ``a list of str``, ``one of ['a', 'b']``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is None or hint is type(None):
        return "null"
    if hint is bool:
        return "bool (true or false)"
    if hint is int:
        return "int (an integer)"
    if hint is float:
        return "float (a number)"
    if hint is str:
        return "str (a string)"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is typing.Literal:
        return f"one of {list(args)}"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plain(args[0])}"
        return f"a list of {len(args)} {_plain(args[0]) if len(set(args)) == 1 else 'values'}"
    if origin in _SEQUENCES:
        return f"a list of {_plain(args[0])}" if args else "a list"
    if origin in _MAPPINGS:
        return "a mapping"
    if isinstance(hint, type):
        return "a path" if issubclass(hint, os.PathLike) else f"a {hint.__name__}"
    return str(hint)


def _plain(hint: Any) -> str:
    return {int: "integers", float: "numbers", str: "strings", bool: "booleans"}.get(hint, describe(hint))


def _convert(value: Any, hint: Any) -> Any:
    """``value`` checked against ``hint`` (raises _Mismatch), with integral floats made ints and lists made
    the annotated container."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is _EMPTY or isinstance(hint, (str, typing.ForwardRef, typing.TypeVar)):
        return value
    if hint is None or hint is type(None):
        if value is not None:
            raise _Mismatch("null")
        return None
    if hint is bool:
        if not isinstance(value, bool):
            raise _Mismatch(describe(hint))
        return value
    if hint is int:
        if isinstance(value, float) and value.is_integer():  # 1.0e+6 steps: YAML writes it as a float
            return int(value)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise _Mismatch(describe(hint))
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _Mismatch(describe(hint))
        try:
            return float(value)
        except OverflowError:  # an int beyond float's range
            raise _Mismatch(describe(hint)) from None
    if hint is str:
        if not isinstance(value, str):
            raise _Mismatch(describe(hint))
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in sorted(args, key=_union_order):
            try:
                return _convert(value, arg)
            except _Mismatch:
                continue
        raise _Mismatch(describe(hint))
    if origin is typing.Literal:
        if not any(value == a and type(value) is type(a) for a in args):
            raise _Mismatch(f"one of {list(args)}")
        return value
    if origin in (tuple, *_SEQUENCES, *_MAPPINGS):
        try:
            return _convert_container(value, origin, args)
        except _Mismatch:
            raise _Mismatch(describe(hint)) from None
    if origin is None and isinstance(hint, type) and hint is not object:
        if not isinstance(value, hint):
            raise _Mismatch(describe(hint))
    return value  # Callable, Protocols, other generics: unchecked


def _convert_container(value: Any, origin: Any, args: tuple[Any, ...]) -> Any:
    """``value`` as the container ``origin[args]`` (tuple, a sequence or a mapping); a _Mismatch for a wrong
    value or element."""
    if origin is tuple:
        items = _items(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0]) for v in items)
        if args and len(items) != len(args):
            raise _Mismatch("")
        return tuple(_convert(v, a) for v, a in zip(items, args, strict=True)) if args else tuple(items)
    if origin in _SEQUENCES:
        items = _items(value)
        converted = [_convert(v, args[0]) for v in items] if args else list(items)
        return tuple(converted) if isinstance(value, tuple) and origin is not list else converted
    if not isinstance(value, Mapping):
        raise _Mismatch("")
    if len(args) != 2:
        return value
    return {_convert(k, args[0]): _convert(v, args[1]) for k, v in value.items()}


def _union_order(arg: Any) -> int:
    """Try the exact types first, so that ``int | float`` keeps an int and ``float | str`` keeps a number."""
    return 0 if arg in (bool, type(None)) else 1 if arg in (int, str) else 2


def _items(value: Any) -> list[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise _Mismatch("")
    return list(value)


def check_value(value: Any, hint: Any, key: str) -> Any:
    """``value`` checked against the annotation ``hint`` (see the module docstring), or a ValueError
    ``recipe key KEY must be EXPECTED, got VALUE``; returns the value with integral floats made ints and
    lists made tuples where the annotation says tuple."""
    try:
        return _convert(value, hint)
    except _Mismatch as err:
        hint_text = _BOOL_HINT if isinstance(value, bool) else ""
        raise ValueError(f"recipe key {key} must be {err.expected}, got {value!r}{hint_text}") from None


def _unwrap(factory: Callable[..., Any]) -> Callable[..., Any]:
    """The class or function under any functools.partial."""
    while isinstance(factory, functools.partial):
        factory = factory.func
    return factory


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations of ``function``; an annotation that cannot be resolved (a TYPE_CHECKING import)
    stays unchecked."""
    try:
        return typing.get_type_hints(function)
    except Exception:  # noqa: BLE001 (typing raises NameError, TypeError, ... for unresolvable names)
        pass
    namespace = getattr(function, "__globals__", {})
    out = {}
    for name, annotation in getattr(function, "__annotations__", {}).items():
        try:
            out[name] = eval(annotation, namespace) if isinstance(annotation, str) else annotation  # noqa: S307
        except Exception:  # noqa: BLE001, S112
            continue
    return out


def parameters(factory: Callable[..., Any]) -> dict[str, tuple[inspect.Parameter, Any]]:
    """Keyword parameters of ``factory`` -> (parameter, resolved annotation or ``Parameter.empty``).

    A class whose ``__init__`` takes ``**kwargs`` also gets the parameters of its bases' ``__init__``;
    any other factory with ``**kwargs`` gets a ``"**"`` entry (every key accepted, unchecked)."""
    inner = _unwrap(factory)
    hints = _hints(inner.__init__ if isinstance(inner, type) else inner)
    out: dict[str, tuple[inspect.Parameter, Any]] = {}
    for name, param in inspect.signature(factory).parameters.items():
        if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            out[name] = (param, hints.get(name, _EMPTY))
        elif param.kind is param.VAR_KEYWORD:
            base = _base_with_init(factory)
            if base is None:
                out["**"] = (param, _EMPTY)
            else:
                for key, entry in parameters(base).items():
                    out.setdefault(key, entry)
    return out


def _base_with_init(factory: Callable[..., Any]) -> type | None:
    factory = _unwrap(factory)
    if not isinstance(factory, type):
        return None
    for base in factory.__mro__[1:]:
        if "__init__" in vars(base) and base is not object:
            return base
    return None


def check(factory: Callable[..., Any], kwargs: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The keywords ``factory`` will get from the section ``where``: unknown and missing keys and wrong types
    are ValueErrors naming ``where.key`` (see the module docstring)."""
    known = parameters(factory)
    names = [name for name in known if name != "**"]
    if "**" not in known:
        for key in kwargs:
            if key not in known:
                raise ValueError(f"unknown recipe key {where}.{key}{did_you_mean(key, names)}; "
                                 f"known keys of '{where}': {names}")
    for name, (param, _) in known.items():
        if name != "**" and param.default is _EMPTY and name not in kwargs:
            raise ValueError(f"recipe key {where}.{name} is required (known keys of '{where}': {names})")
    return {key: check_value(value, known[key][1] if key in known else _EMPTY, f"{where}.{key}")
            for key, value in kwargs.items()}


def name_section(err: ValueError, where: str, keys: Iterable[str]) -> None:
    """Make ``err``'s message name the section ``where``, in place (type and traceback unchanged): a message that
    starts with one of the section's ``keys`` gets ``where.`` before it, any other ``where: ``; one that already
    starts with ``where`` or holds ``where.`` is left as it is."""
    if not err.args or not isinstance(err.args[0], str):
        return
    message = err.args[0]
    if message.startswith(where) or f"{where}." in message:
        return
    first = re.match(r"[A-Za-z_]\w*", message)
    named = first is not None and first.group() in set(keys)
    err.args = (f"{where}.{message}" if named else f"{where}: {message}", *err.args[1:])


def call(factory: Callable[..., Any], kwargs: Mapping[str, Any], where: str) -> Any:
    """``factory(**kwargs)`` after :func:`check`; a ValueError raised by the factory gains the section in its
    message (:func:`name_section`), any other error passes through untouched."""
    checked = check(factory, kwargs, where)
    try:
        return factory(**checked)
    except ValueError as err:
        name_section(err, where, [*checked, *parameters(factory)])
        raise
