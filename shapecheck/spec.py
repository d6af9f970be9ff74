"""Parse input specs such as ``3x64x64`` or ``16000:int64`` into shapes and dtypes."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

import torch

from shapecheck.errors import UsageError

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "float": torch.float32, "float64": torch.float64,
    "double": torch.float64, "float16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "int64": torch.int64, "long": torch.int64,
    "int32": torch.int32, "int": torch.int32, "int16": torch.int16, "int8": torch.int8,
    "uint8": torch.uint8, "bool": torch.bool,
}

_DIMS = re.compile(r"^\d+([x,]\d+)*$")


@dataclass(frozen=True)
class InputSpec:
    """One sample's shape (no batch dimension) and its dtype; a named one (``mask=1x64x64``)
    is passed to ``forward`` as that keyword argument."""

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    name: str | None = None

    def __str__(self) -> str:
        dims = "x".join(str(d) for d in self.shape)
        text = dims if self.dtype == torch.float32 else f"{dims}:{dtype_name(self.dtype)}"
        return f"{self.name}={text}" if self.name else text

    def batched(self, batch: int) -> tuple[int, ...]:
        return (batch, *self.shape)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def parse_dtype(text: str) -> torch.dtype:
    try:
        return DTYPES[text.strip().lower()]
    except KeyError:
        raise UsageError(
            f"unknown dtype {text!r}: use one of {', '.join(sorted(DTYPES))}"
        ) from None


def parse_input(text: str | InputSpec | tuple[int, ...], dtype: torch.dtype | None = None) -> InputSpec:
    """``3x64x64``, ``3,64,64`` or ``16000:int64``; a tuple of ints is taken as the shape."""
    if isinstance(text, InputSpec):
        return text
    if isinstance(text, tuple | list):
        return _checked(tuple(int(d) for d in text), dtype or torch.float32, str(text))
    name, equals, rest = str(text).strip().partition("=")
    if equals:  # image=3x224x224: a keyword argument of forward
        if not name.strip().isidentifier():
            raise UsageError(f"invalid input spec {text!r}: a named input is NAME=SHAPE, e.g. mask=1x64x64")
        return replace(parse_input(rest, dtype), name=name.strip())
    dims, _, dtype_text = str(text).strip().lower().partition(":")
    dims = dims.replace(" ", "")
    if not _DIMS.match(dims):
        raise UsageError(
            f"invalid input spec {text!r}: give one sample's shape without the batch, "
            "e.g. 3x64x64 (images), 1x16000 (audio) or 128:int64 (token ids)"
        )
    chosen = parse_dtype(dtype_text) if dtype_text else (dtype or torch.float32)
    return _checked(tuple(int(d) for d in re.split("[x,]", dims)), chosen, str(text))


def _checked(shape: tuple[int, ...], dtype: torch.dtype, text: str) -> InputSpec:
    if not shape or any(d <= 0 for d in shape):
        raise UsageError(f"invalid input spec {text!r}: every size must be a positive integer")
    return InputSpec(shape, dtype)


def parse_inputs(
    texts: str | InputSpec | tuple[int, ...] | list, dtype: torch.dtype | None = None
) -> tuple[InputSpec, ...]:
    """One spec, or a list of specs for models with several inputs."""
    if isinstance(texts, list) and texts and not isinstance(texts[0], int):
        return tuple(parse_input(t, dtype) for t in texts)
    return (parse_input(texts, dtype),)


_SCALES = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_BYTES = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_AMOUNT = re.compile(r"^\s*([0-9][0-9_,]*(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_count(text: str | int, what: str = "count") -> int:
    """``25M``, ``1.5G``, ``250_000`` or an int: parameter and MAC budgets."""
    if isinstance(text, int):
        return text
    match = _AMOUNT.match(str(text))
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _SCALES:
        raise UsageError(f"invalid {what} {text!r}: write a number with an optional K, M, G or T, e.g. 25M")
    return int(float(match.group(1).replace("_", "").replace(",", "")) * _SCALES[unit])


def parse_bytes(text: str | int, what: str = "size") -> int:
    """``512MB``, ``1.5GiB`` or a number of bytes."""
    if isinstance(text, int):
        return text
    match = _AMOUNT.match(str(text))
    unit = (match.group(2).upper() or "B") if match else ""
    if match is None or unit not in _BYTES:
        raise UsageError(f"invalid {what} {text!r}: write bytes with a unit, e.g. 512MB or 1.5GiB")
    return int(float(match.group(1).replace("_", "").replace(",", "")) * _BYTES[unit])
