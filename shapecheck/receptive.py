"""Receptive field of every traced row: which input pixels one output pixel depends on.

Computed along the recorded chain (each leaf row's ``input_sources``) from the layers'
kernel, stride, dilation and padding attrs, per spatial dimension, with the classic
recurrences (Dumoulin & Visin; Araujo et al., "Computing receptive fields of CNNs")::

    size_out  = size_in + (d*(k-1)) * jump_in
    jump_out  = jump_in * s
    start_out = start_in + ((d*(k-1)) / 2 - p) * jump_in

``size`` is the field's width in input pixels, ``jump`` the input pixels between
neighbouring outputs, ``start`` where the first output's field is centred (padding moves it
before the image's first pixel). A flatten, a Linear or an attention layer mixes every
pixel: from there the field is the whole input (``WHOLE``).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from shapecheck import arithmetic
from shapecheck.report import Layer
from shapecheck.rules.context import is_flatten

# Functional ops that combine every position along the dimensions they contract.
_MIXING: Final = frozenset({"linear", "matmul", "bmm", "einsum", "scaled_dot_product_attention", "softmax"})


@dataclass(frozen=True)
class Field:
    """One output pixel's view of the input, one entry per spatial dimension (H, W)."""

    size: tuple[int, ...]
    jump: tuple[float, ...]
    start: tuple[float, ...]

    def __str__(self) -> str:
        if not self.size:
            return "1 input pixel (no spatial layer yet)"
        return (f"{_dims(self.size)} input pixels, stride {_dims(self.jump)}, "
                f"first output centred at ({', '.join(_number(s) for s in self.start)})")


# The whole input: every output reads every input pixel.
WHOLE: Final = Field((), (), (math.nan,))
_POINT: Final = Field((), (), ())  # before any spatial layer: one pixel, of any rank


def describe(field: Field | None) -> str:
    """Hover text: ``5x5 input pixels, stride 1, ...``; ``the whole input`` after a flatten."""
    if field is None:
        return "not known for this row"
    return "the whole input" if field is WHOLE else str(field)


def receptive_fields(layers: Iterable[Layer]) -> dict[int, Field]:
    """The field of each leaf row's output, by row index (containers: see their last leaf)."""
    fields: dict[int, Field] = {}
    for layer in layers:
        if layer.is_leaf:
            fields[layer.index] = _step(layer, _merged(fields.get(i) for i in layer.input_sources if i is not None))
    return fields


def _merged(found: Iterable[Field | None]) -> Field:
    """Several inputs (a residual add, a skip concatenation): the widest field wins."""
    known = [f for f in found if f is not None]
    if any(f is WHOLE for f in known):
        return WHOLE
    return max(known, key=lambda f: (len(f.size), f.size), default=_POINT)


def _step(layer: Layer, field: Field) -> Field:
    if field is WHOLE or _mixes(layer):
        return WHOLE
    found = arithmetic.windows(layer)
    if found is not None:
        return _windowed(_ranked(field, len(found)), found)
    shapes = (layer.input_shapes[0], layer.output_shapes[0]) if layer.input_shapes and layer.output_shapes else None
    if shapes and len(shapes[0]) > 2 and len(shapes[0]) == len(shapes[1]) and shapes[0][2:] != shapes[1][2:]:
        if layer.type.startswith("Adaptive") or "pool" in layer.name:
            return _adaptive(_ranked(field, len(shapes[0]) - 2), shapes[0][2:], shapes[1][2:])
        if layer.type == "Upsample" or layer.name == "interpolate":
            return _resized(_ranked(field, len(shapes[0]) - 2), shapes[0][2:], shapes[1][2:])
    return field  # pointwise (activations, norms, dropout, channel concatenation)


def _mixes(layer: Layer) -> bool:
    return (is_flatten(layer) or layer.attr("in_features") is not None or "Attention" in layer.type
            or (layer.kind == "function" and layer.name in _MIXING))


def _ranked(field: Field, rank: int) -> Field:
    if len(field.size) == rank:
        return field
    return Field((1,) * rank, (1.0,) * rank, (0.0,) * rank)  # a new spatial rank starts afresh


def _windowed(field: Field, windows: tuple[arithmetic.Window, ...]) -> Field:
    size, jump, start = [], [], []
    for w, r, j, s in zip(windows, field.size, field.jump, field.start):
        reach = w.span - 1
        if w.transposed:  # an output pixel gathers about ceil(span / stride) input pixels
            out_jump = j / w.stride
            size.append(math.ceil(r + (math.ceil(w.span / w.stride) - 1) * j))
            start.append(s + (w.padding - reach / 2) * out_jump)
            jump.append(out_jump)
        else:
            size.append(math.ceil(r + reach * j))  # a fractional jump: after upsampling
            start.append(s + (reach / 2 - w.padding) * j)
            jump.append(j * w.stride)
    return Field(tuple(size), tuple(jump), tuple(start))


def _adaptive(field: Field, before: tuple[int, ...], after: tuple[int, ...]) -> Field:
    """An adaptive (or functional) pool chooses windows of about ceil(n / m) pixels."""
    windows = tuple(arithmetic.Window(math.ceil(n / m), max(1, n // m), 0) for n, m in zip(before, after) if m)
    return _windowed(field, windows) if len(windows) == len(before) else field


def _resized(field: Field, before: tuple[int, ...], after: tuple[int, ...]) -> Field:
    """Upsampling by ``after / before`` brings outputs closer together; each still reads its source pixel."""
    jump = tuple(j * n / m for j, n, m in zip(field.jump, before, after))
    start = tuple(s + (n / m - 1) / 2 * j for s, j, n, m in zip(field.start, field.jump, before, after))
    return Field(field.size, jump, start)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}".rstrip("0")


def _dims(values: tuple[float, ...]) -> str:
    return "x".join(_number(v) for v in values)
