"""What every rule reads: the trace's rows and failures, and what the user asked for."""
from __future__ import annotations

import math
from dataclasses import dataclass

from shapecheck.report import Layer, Shape
from shapecheck.spec import InputSpec
from shapecheck.trace import Failure

_FLATTENS = {"view", "reshape", "flatten", "Flatten"}


@dataclass(frozen=True)
class Context:
    layers: tuple[Layer, ...]
    failures: tuple[Failure, ...]
    inputs: tuple[InputSpec, ...]
    batch: int
    outputs: tuple[Shape, ...]
    expected_output: Shape | None = None

    @property
    def input_text(self) -> str:
        return ", ".join(str(spec) for spec in self.inputs)

    def producer(self, layer: Layer, position: int = 0) -> Layer | None:
        if position >= len(layer.input_sources):
            return None
        index = layer.input_sources[position]
        return self.layers[index] if index is not None else None

    def origin(self, layer: Layer) -> tuple[Layer | None, Shape]:
        """The layer whose map fed ``layer``, looking through flatten/view, and that map's shape.

        For ``fc1`` after ``x.view(-1, 2880)`` after ``pool`` this is (pool, [2, 20, 13, 13]).
        """
        source = self.producer(layer)
        shape = layer.input_shapes[0] if layer.input_shapes else ()
        if source is not None and source.name in _FLATTENS and source.input_shapes:
            return self.producer(source), source.input_shapes[0]
        return source, shape


def shape_text(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def factors(shape: Shape) -> str:
    """``20x13x13`` for one sample of a [B, 20, 13, 13] map."""
    return "x".join(str(d) for d in shape[1:]) if len(shape) > 2 else str(math.prod(shape[1:]))
