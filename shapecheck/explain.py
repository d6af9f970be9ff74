"""``--explain``: each layer's shape arithmetic in the course's notation, with receptive field.

Receptive field r and cumulative stride j follow each layer's producer:
``r_out = r_in + (d*(k-1)) * j_in`` and ``j_out = j_in * s`` (along the first spatial dimension).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from shapecheck import arithmetic
from shapecheck.functional import twin_type
from shapecheck.report import Layer, Report
from shapecheck.receptive import WHOLE, Field, receptive_fields
from shapecheck.rules.context import is_flatten

FORMULA = "out = floor((in + 2*p - d*(k-1) - 1) / s) + 1"
TRANSPOSED = "out = (in - 1)*s - 2*p + d*(k-1) + output_padding + 1"


@dataclass(frozen=True)
class Step:
    layer: str
    text: str
    receptive_field: int | None  # None once a flatten mixes every pixel
    stride: float | None  # fractional after an upsampling


def steps(report: Report) -> tuple[Step, ...]:
    fields = receptive_fields(report.layers)
    out: list[Step] = []
    for layer in report.layers:
        text = arithmetic_line(layer) if layer.is_leaf else None
        if text is not None:
            rf, jump = _first_dimension(fields.get(layer.index))
            out.append(Step(layer.name, text, rf, jump))
    return tuple(out)


def _first_dimension(field: Field | None) -> tuple[int | None, float | None]:
    """The field along the first spatial dimension; (None, None) once it is the whole input."""
    if field is None or field is WHOLE:
        return None, None
    if not field.size:
        return 1, 1
    jump = field.jump[0]
    return field.size[0], int(jump) if float(jump).is_integer() else jump


def arithmetic_line(layer: Layer) -> str | None:
    """The row's line of ``--explain``: ``conv1 Conv2d(k=5, s=1, p=0): 64 -> ... = 60``."""
    mark = "  <- fails here" if layer.failed else ""
    found = arithmetic.windows(layer)
    if found is not None and layer.input_shapes:
        spatial = layer.input_shapes[0][-len(found):]
        return f"{layer.name} {layer.type}({_describe(found)}): {_formulas(found, spatial)}{mark}"
    kind = twin_type(layer.kind, layer.name, layer.type)  # F.adaptive_avg_pool2d reads as its module
    resized = layer.input_shapes and layer.output_shapes
    if kind.startswith("Adaptive") and resized:
        return (f"{layer.name} {layer.type}({layer.attr('output_size')}): "
                f"{_dims(layer.input_shapes[0][2:])} -> {_dims(layer.output_shapes[0][2:])}{mark}")
    if kind.startswith("Upsample") and resized:
        how = ", ".join(f"{k}={v}" for k, v in layer.attrs if k in ("size", "scale_factor") and v is not None)
        return (f"{layer.name} {layer.type}({how}): {_dims(layer.input_shapes[0][2:])} -> "
                f"{_dims(layer.output_shapes[0][2:])}{mark}")
    if kind.endswith(_PADS) and resized:
        pad = layer.attr("pad", layer.attr("padding"))
        return f"{layer.name} {layer.type}({pad}): {_dims(layer.input_shapes[0][2:])} -> " \
               f"{_dims(layer.output_shapes[0][2:])}{mark}"
    if is_flatten(layer) and layer.input_shapes and len(layer.input_shapes[0]) > 2:
        dims = layer.input_shapes[0][1:]
        return f"{layer.name}: {' x '.join(map(str, dims))} = {math.prod(dims)}{mark}"
    if layer.attr("in_features") is not None and layer.input_shapes:
        written = layer.written_as("in_features")
        declared = f"{layer.attr('in_features')}" + (f" ({written})" if written and written != str(layer.attr("in_features")) else "")
        received = layer.input_shapes[0][-1]
        if received != layer.attr("in_features"):
            return f"{layer.name} Linear: expects {declared} features but receives {received}{mark}"
        return f"{layer.name} Linear: {declared} -> {layer.attr('out_features')} features"
    return None


_PADS = ("Pad", "Pad1d", "Pad2d", "Pad3d")  # F.pad's twin, ZeroPad2d, ReflectionPad2d, ...


def _describe(found: tuple[arithmetic.Window, ...]) -> str:
    w = found[0]
    if w.kernel == w.stride and not w.padding and w.dilation == 1:
        return str(w.kernel)  # MaxPool2d(2): the course's shorthand
    return w.describe()


def _formulas(found: tuple[arithmetic.Window, ...], spatial: tuple[int, ...]) -> str:
    if len(set(found)) == 1 and len(set(spatial)) == 1:
        return found[0].formula(spatial[0])
    return "; ".join(f"{axis}: {w.formula(n)}" for axis, w, n in zip("HWD"[-len(found):] if len(found) < 3 else "DHW",
                                                                  found, spatial))


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))
