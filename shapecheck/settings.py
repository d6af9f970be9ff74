"""One schema for a model's settings, wherever they are written: a ``[[tool.shapecheck.models]]``
entry, the ``[tool.shapecheck]`` table, and the pytest marker's arguments.

Each mistake is one line naming where, the key, the value and what is allowed; nothing is
coerced (``"false"`` is not false, ``2.9`` is not 2), so a typo never passes as a setting.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shapecheck.errors import UsageError


@dataclass(frozen=True)
class Key:
    allowed: str  # what the message says is allowed
    valid: Callable[[Any], bool]


def _whole(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _seconds(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _texts(value: Any) -> bool:
    return _text(value) or (isinstance(value, list | tuple) and bool(value) and all(_text(v) for v in value))


def _codes(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list | tuple) and all(isinstance(v, str) for v in value))


def _amount(parse: Callable[[Any, str], int]) -> Callable[[Any], bool]:
    def valid(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | str):
            return False
        if isinstance(value, int):
            return value >= 0
        try:
            return math.isfinite(parse(value, "budget")) and parse(value, "budget") >= 0
        except (UsageError, ValueError, OverflowError):
            return False
    return valid


def _dtype(value: Any) -> bool:
    from shapecheck.spec import DTYPES

    return isinstance(value, str) and value.strip().lower() in DTYPES


def _count(value: Any, what: str) -> int:
    from shapecheck.spec import parse_count

    return parse_count(value, what)


def _bytes(value: Any, what: str) -> int:
    from shapecheck.spec import parse_bytes

    return parse_bytes(value, what)


MODEL: dict[str, Key] = {
    "target": Key('a string "FILE.py:Name" or "package.module:Name"', lambda v: _text(v) and ":" in v),
    "input": Key('a shape string such as "3x64x64", or a list of them', _texts),
    "output": Key('a shape string such as "10", or a positive whole number', lambda v: _text(v) or _whole(v, 1)),
    "batch": Key("a whole number of at least 1", lambda v: _whole(v, 1)),
    "batch_dim": Key("a whole number of at least 0 (1 for sequence-first inputs)", lambda v: _whole(v, 0)),
    "dtype": Key("a dtype name such as float32, bfloat16 or int64", _dtype),
    "mode": Key('"eval", "train" or "same"', lambda v: v in ("eval", "train", "same")),
    "max_params": Key('a count of at least 0, as a number or text such as "25M"', _amount(_count)),
    "max_macs": Key('a count of at least 0, as a number or text such as "600M"', _amount(_count)),
    "max_activation_memory": Key('bytes, at least 0, as a number or text such as "2GiB"', _amount(_bytes)),
    "select": Key('rule codes or prefixes: a string such as "SHP0" or a list of them', _codes),
    "ignore": Key('rule codes or prefixes: a string such as "SHP101" or a list of them', _codes),
    "checkpoint": Key("a path to a state_dict file, relative to the project root", _text),
}

PROJECT: dict[str, Key] = {
    "models": Key("an array of tables, [[tool.shapecheck.models]]",
                  lambda v: isinstance(v, list) and all(isinstance(m, Mapping) for m in v)),
    "select": MODEL["select"],
    "ignore": MODEL["ignore"],
    "zero_config": Key("true or false (a TOML boolean, not a string)", lambda v: isinstance(v, bool)),
    "timeout": Key("seconds for each model, a number above 0", lambda v: _seconds(v)),
    "max_cpu_memory": Key('bytes the CPU fallback may use, as a number or text such as "8GiB"', _amount(_bytes)),
}

# The marker checks one model the test hands it: its own keys, and those of a model entry
# that make sense for an object already built.
MARKER: dict[str, Key] = {
    **{key: MODEL[key] for key in ("input", "output", "batch", "batch_dim", "dtype", "mode", "max_params", "max_macs",
                                   "max_activation_memory", "select", "ignore", "checkpoint")},
    "fixture": Key("the name of the test's fixture that holds the model", lambda v: _text(v) and v.isidentifier()),
    "table": Key("true or false", lambda v: isinstance(v, bool)),
}


def check(values: Mapping[str, Any], schema: Mapping[str, Key], where: str) -> None:
    """Raise a one-line UsageError for the first unknown key or invalid value."""
    for key, value in values.items():
        if key not in schema:
            raise UsageError(f"{where}: unknown key {key!r}; known keys: {', '.join(sorted(schema))}")
        if not schema[key].valid(value):
            raise UsageError(f"{where}: {key} = {_shown(value)} is not valid; {key} is {schema[key].allowed}")


def _shown(value: Any) -> str:
    """The value as TOML would spell it, so the user can find it in their file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)
