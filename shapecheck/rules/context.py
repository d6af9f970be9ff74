"""What every rule reads: the trace's rows and failures, and what the user asked for."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shapecheck.report import Fix, Layer, Location, Shape
from shapecheck.rules import registry
from shapecheck.sizes import Solver
from shapecheck.spec import InputSpec
from shapecheck.trace import Failure, TraceResult

FLATTENS = frozenset({"view", "reshape", "flatten", "Flatten"})


def is_flatten(layer: Layer) -> bool:
    """A view/reshape/flatten call, or an nn.Flatten module under any name (``features.3``)."""
    return layer.name in FLATTENS if layer.kind == "function" else layer.type in FLATTENS or layer.name in FLATTENS


@dataclass(frozen=True)
class Submodule:
    """A module of the model, called or not: what the unused-submodule rule needs."""

    name: str
    type: str
    numel: int  # parameters under it, its own submodules' included
    # Its owner's methods other than __init__ mention self.<it>: used on some path the trace
    # did not take (timm reads an attention dropout's p only in training).
    referenced: bool = False


@dataclass(frozen=True)
class Context:
    layers: tuple[Layer, ...]
    failures: tuple[Failure, ...]
    inputs: tuple[InputSpec, ...]
    batch: int
    outputs: tuple[Shape, ...]
    expected_output: Shape | None = None
    # Where the inputs keep the batch (1 for a sequence-first model); None: no input has one.
    batch_dim: int | None = 0
    # The same trace at batch + 1, when a reshape makes the batch worth checking (SHP004).
    second: TraceResult | None = None
    submodules: tuple[Submodule, ...] = ()
    touched: frozenset[str] = frozenset()
    fetched: frozenset[str] = frozenset()
    output_names: tuple[str, ...] = ()  # key paths when the model returns dicts (detection: per image)
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    # Services that run the model again, used only when a rule fires.
    solver: Solver | None = field(default=None, compare=False)
    locate: Callable[[str], Location | None] = field(default=lambda name: None, compare=False)

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
        flattened = self.flattened(layer)
        return flattened if flattened is not None else (source, shape)

    def flattened(self, layer: Layer) -> tuple[Layer | None, Shape] | None:
        """When ``layer`` reads a flattened map: the layer that made the map, and its shape."""
        source = self.producer(layer)
        while source is not None and _elementwise(source):  # dropout, relu between flatten and fc
            source = self.producer(source)
        if source is not None and is_flatten(source) and source.input_shapes and source.output_shapes \
                and _flattens_sample(source.input_shapes[0], source.output_shapes[0]):
            return self.producer(source), source.input_shapes[0]
        return None

    def solver_for(self, code: str) -> Solver | None:
        """The sizes solver, when ``code`` will be reported: its probes cost whole traces, which
        a run that ignores the rule (a pre-commit config's ``ignore``) should not pay for."""
        return self.solver if registry.selected(code, self.select, self.ignore) else None

    @property
    def completed(self) -> bool:
        """The forward ran to the end, recovering from every failure on the way."""
        return bool(self.outputs) and all(f.recovered for f in self.failures)

    @property
    def square(self) -> int | None:
        """The spatial size of the first input when it is square (64 for 3x64x64)."""
        shape = self.inputs[0].shape if self.inputs else ()
        return shape[1] if len(shape) >= 2 and len(set(shape[1:])) == 1 else None

    def sized(self, size: int) -> str:
        """The first input with every spatial dimension set to ``size``: ``3x60x60``."""
        shape = self.inputs[0].shape
        return "x".join(str(d) for d in (shape[0], *(size for _ in shape[1:])))


def _flattens_sample(before: Shape, after: Shape) -> bool:
    """[B, C, H, W] -> [B, C*H*W]: one row of features per sample, not windows or tokens."""
    return len(after) == 2 and len(before) > 2 and after[1] == math.prod(before[1:])


def _elementwise(layer: Layer) -> bool:
    # Same shape in and out, and no weights that map features: dropout, activations, norms.
    return (len(layer.input_shapes) == 1 and layer.output_shapes == layer.input_shapes
            and not is_flatten(layer) and layer.attr("in_features") is None
            and layer.attr("in_channels") is None)


def repair(found: Fix | str, hint: str | None = None) -> dict[str, Any]:
    """Keyword arguments for a finding: its fix, or a hint that says why --fix leaves it alone."""
    if isinstance(found, Fix):
        return {"fix": found, "hint": hint}
    reason = f"not fixed automatically: {found}"
    return {"hint": f"{hint}; {reason}" if hint else reason}


def shape_text(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def factors(shape: Shape) -> str:
    """``20x13x13`` for one sample of a [B, 20, 13, 13] map."""
    return "x".join(str(d) for d in shape[1:]) if len(shape) > 2 else str(math.prod(shape[1:]))
