"""Type and range checks of the config dataclasses, in one place.

Each config dataclass calls :func:`check_fields` from its ``__post_init__``: every field's value is
checked against the field's annotation (and normalised: the string ``"1e-4"`` that YAML reads
from ``1e-4`` becomes ``0.0001``, a float ``2.0`` for an int field becomes ``2``, a list for a
``tuple[str, ...]`` field becomes a tuple), then against the rule in the field's metadata
``"check"``:

- a tuple of allowed values: ``("dpo", "ipo", "hinge")``
- a bound: ``"> 0"``, ``">= 0"``, ``">= 1"``
- an interval: ``"(0, 1]"``, ``"[0, 1]"``, ``"[0, 1)"``

A failed check raises :class:`~prefsift.core.errors.ConfigError` with the field's name as its key,
so the CLI can name the flag, and a YAML config the key path and line."""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from functools import lru_cache

from .errors import ConfigError, did_you_mean

__all__ = ["check_fields", "check_value", "check_known_keys"]


@lru_cache(maxsize=None)
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _type_name(tp) -> str:
    return {float: "a number", int: "a whole number", str: "a string", bool: "true or false",
            dict: "a mapping", list: "a list"}.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(key: str, value, tp):
    """``value`` as type ``tp`` (from a field annotation), or a ConfigError."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(key, value, inner[0])
        return value
    if value is None:
        raise ConfigError(key=key, problem=f"must be {_type_name(origin or tp)}, got null")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key=key, problem=f"must be true or false, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(key=key, problem=f"must be a number, got {value!r}")
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(key=key, problem=f"must be a number, got {value!r}") from None
        if isinstance(value, (int, float)):
            if not math.isfinite(value):
                raise ConfigError(key=key, problem=f"must be a finite number, got {value!r}")
            return value  # an int stays an int: stage keys hash the settings as given
        raise ConfigError(key=key, problem=f"must be a number, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(key=key, problem=f"must be a whole number, got {value!r}")
        if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        raise ConfigError(key=key, problem=f"must be a whole number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(key=key, problem=f"must be a string, got {value!r}")
    if tp is dict or origin is dict:
        if isinstance(value, dict):
            return value
        raise ConfigError(key=key, problem=f"must be a mapping {{key: value, ...}}, got {value!r}")
    if tp is list or origin is list:
        if isinstance(value, (list, tuple)):
            return list(value)
        raise ConfigError(key=key, problem=f"must be a list [a, b, ...], got {value!r}")
    if origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(key=key, problem=f"must be a list [a, b, ...], got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
        return tuple(value)
    return value


_BOUND = re.compile(r"^(>=|>|<=|<)\s*(-?[\d.]+(?:e-?\d+)?)$")
_INTERVAL = re.compile(r"^([\[(])\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*([\])])$")


def check_value(key: str, value, rule):
    """Check one value against a rule (see the module docstring); returns the value."""
    if rule is None or value is None:
        return value
    if callable(rule):
        problem = rule(value)
        if problem:
            raise ConfigError(key=key, problem=problem)
        return value
    if isinstance(rule, (tuple, list, frozenset, set)):
        if value not in rule:
            choices = ", ".join(map(str, rule))
            raise ConfigError(key=key, problem=f"must be one of {choices}; got {value!r}"
                                              f"{did_you_mean(value, rule)}")
        return value
    m = _BOUND.match(rule)
    if m:
        op, bound = m.group(1), float(m.group(2))
        ok = {">": value > bound, ">=": value >= bound, "<": value < bound,
              "<=": value <= bound}[op]
        if not ok:
            raise ConfigError(key=key, problem=f"must be {op} {m.group(2)}, got {value!r}")
        return value
    m = _INTERVAL.match(rule)
    if m:
        lo, hi = float(m.group(2)), float(m.group(3))
        ok = ((value > lo if m.group(1) == "(" else value >= lo)
              and (value < hi if m.group(4) == ")" else value <= hi))
        if not ok:
            raise ConfigError(key=key, problem=f"must be in {rule}, got {value!r}")
        return value
    # a bug in a dataclass's metadata
    raise AssertionError(f"unknown check rule {rule!r} for {key}")


def check_fields(obj) -> None:
    """Check and normalise every field of the dataclass instance ``obj`` (see the module
    docstring)."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        tp = hints.get(f.name)
        new = _coerce(f.name, value, tp) if tp is not None else value
        check_value(f.name, new, f.metadata.get("check"))
        if new is not value:
            object.__setattr__(obj, f.name, new)  # frozen dataclasses too


def check_known_keys(given, cls, section: str | None = None,
                     refused: dict[str, str] | None = None) -> None:
    """Refuse keys of the mapping ``given`` that are not fields of dataclass ``cls`` (``refused``:
    field names that may not be given here, with the reason)."""
    known = [f.name for f in dataclasses.fields(cls) if f.name not in (refused or {})]
    for k in given:
        if refused and k in refused:
            raise ConfigError(key=f"{section}.{k}" if section else str(k), problem=refused[k])
        if k not in known:
            of = f" of `{section}`" if section else ""
            raise ConfigError(key=f"{section}.{k}" if section else str(k),
                              problem=f"is not a setting{of}{did_you_mean(k, known)}; known: "
                                      f"{', '.join(sorted(known))}")
