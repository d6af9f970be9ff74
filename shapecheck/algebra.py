"""A size algebra from one trace: every row's output sizes as a function of the input's size.

The trace at one size records each op, its configuration and where each of its inputs came
from (``Layer.input_sources``). Replaying those rows on *arrays* of candidate sizes, one
element per size, gives every tensor's shape at every size at once, along the dataflow
graph: residual adds and U-Net concatenations meet as equality constraints. Each op adds
the sizes at which it fails (a window larger than its map, a Linear fed the wrong width, a
``view`` that does not divide) and, for windowed layers, the pixels each size leaves unread.

The rows the algebra knows are listed below; anything else (a custom op, a data-dependent
size, a reshape that splits a varying dimension) raises ``Unmodelled``, and the caller falls
back to one traced forward per size. As a self-check, the replay must reproduce the traced
shapes at the traced size, row by row.
"""
from __future__ import annotations

import ast
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from shapecheck import arithmetic
from shapecheck.functional import TWINS, twin_type
from shapecheck.report import Layer, Shape

Dim = Union[int, np.ndarray]  # a constant, or one value per candidate size
Sym = tuple[Dim, ...]


class Unmodelled(Exception):
    """A row the algebra cannot follow; the message names it."""


# Rows whose output has the broadcast shape of their inputs.
_ELEMENTWISE_MODULES = frozenset({
    "Identity", "ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish",
    "Sigmoid", "Tanh", "Hardtanh", "Hardswish", "Hardsigmoid", "Softplus", "Softsign", "Tanhshrink",
    "LogSigmoid", "Softmax", "LogSoftmax", "Softmax2d", "Threshold",
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout",
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "InstanceNorm1d", "InstanceNorm2d",
    "InstanceNorm3d", "GroupNorm", "LocalResponseNorm", "StochasticDepth", "DropPath",
    "Sequential", "ModuleList",  # an empty container, an identity shortcut
})
_ELEMENTWISE_FUNCTIONS = frozenset({
    "relu", "relu_", "relu6", "gelu", "silu", "mish", "sigmoid", "sigmoid_", "tanh", "tanh_", "hardswish",
    "hardsigmoid", "hardtanh", "leaky_relu", "elu", "selu", "softplus", "softmax", "log_softmax",
    "dropout", "dropout1d", "dropout2d", "dropout3d",
    "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "truediv", "floordiv", "neg",
    "abs", "exp", "log", "sqrt", "rsqrt", "pow", "clamp", "clamp_", "clip", "masked_fill", "where",
    "maximum", "minimum", "sign", "square", "reciprocal", "erf", "sin", "cos",
    "type_as", "zeros_like", "ones_like", "empty_like", "randn_like", "rand_like", "full_like",
    "hardswish_",
})  # copies and casts (contiguous, to, float, clone) get no row: the trace passes their source on
_REDUCTIONS = frozenset({"mean", "sum", "amax", "amin", "std", "var", "prod", "logsumexp"})


@dataclass
class Drops:
    """A windowed layer's unread pixels, per spatial dimension, at every size."""

    layer: str
    inputs: tuple[Dim, ...]
    outputs: tuple[Dim, ...]
    pixels: tuple[Dim, ...]


@dataclass
class Evaluation:
    """Every candidate size's verdict: runs or not, and the first row that fails it."""

    sizes: np.ndarray
    ok: np.ndarray
    first_failure: np.ndarray  # row index, -1 where the size runs
    batch: int = 1
    drops: list[Drops] = field(default_factory=list)
    received: dict[str, Sym] = field(default_factory=dict)  # each module row's first input
    reached: dict[str, np.ndarray] = field(default_factory=dict)  # the sizes at which every window before it has an output

    def accepted(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.sizes[self.ok])

    def features(self, layer: str) -> dict[int, int]:
        """The last dimension ``layer`` receives at each size where one sample is one row."""
        shape = self.received.get(layer)
        if shape is None or len(shape) < 2:
            return {}
        width = np.broadcast_to(shape[-1], self.sizes.shape)
        rows = np.broadcast_to(shape[0], self.sizes.shape)
        # Only where a map reaches it: a pool before it with no output at a size makes no width there.
        reached = self.reached.get(layer, np.ones(self.sizes.shape, dtype=bool))
        return {int(s): int(w) for s, w, r, ran in zip(self.sizes, width, rows, reached) if r == self.batch and ran}


def evaluate(layers: Sequence[Layer], free: Sequence[bool], batch: int, sizes: Sequence[int],
             traced: int) -> Evaluation:
    """Replay ``layers`` (one trace at input size ``traced``, batch ``batch``) at every size.

    ``free`` marks the first input's dimensions (without the batch) that take each size.
    """
    grid = np.asarray(sorted(set(sizes) | {traced}), dtype=np.int64)
    replay = _Replay(layers, tuple(free), batch, grid, int(np.searchsorted(grid, traced)))
    replay.run()
    keep = np.isin(grid, np.asarray(list(sizes), dtype=np.int64))
    return Evaluation(grid[keep], replay.ok[keep], replay.first[keep], batch,
                    [Drops(d.layer, *(tuple(_cut(v, keep) for v in part) for part in (d.inputs, d.outputs, d.pixels)))
                     for d in replay.drops],
                    {name: tuple(_cut(d, keep) for d in shape) for name, shape in replay.received.items()},
                    {name: ran[keep] for name, ran in replay.reached.items()})


def _cut(value: Dim, keep: np.ndarray) -> Dim:
    return value[keep] if isinstance(value, np.ndarray) and value.ndim else value


class _Replay:
    def __init__(self, layers: Sequence[Layer], free: tuple[bool, ...], batch: int, grid: np.ndarray,
                 at: int) -> None:
        self.layers, self.free, self.batch, self.grid, self.at = layers, free, batch, grid, at
        self.ok = np.ones(grid.shape, dtype=bool)
        self.first = np.full(grid.shape, -1, dtype=np.int64)
        self.outs: dict[int, list[Sym]] = {}
        self.drops: list[Drops] = []
        self.received: dict[str, Sym] = {}
        self.reached: dict[str, np.ndarray] = {}
        # Sizes at which every window so far has an output: a hard-coded view fails and the
        # trace recovers, but a pool with no output leaves nothing for the layers after it.
        self.exists = np.ones(grid.shape, dtype=bool)
        self.index = 0

    # -- driving ------------------------------------------------------------------------
    def run(self) -> None:
        if not self.layers:
            raise Unmodelled("the trace recorded no rows")
        for layer in self.layers:
            self.index = layer.index
            if layer.kind == "module" and not layer.is_leaf:
                continue  # a container: its children did the work
            shapes = self._inputs(layer)
            if layer.kind == "module":
                self.received[layer.name] = shapes[0] if shapes else ()
                self.reached[layer.name] = self.exists.copy()
            ran = bool(self.ok[self.at])
            outs = self._row(layer, shapes)
            if ran and not self.ok[self.at] and not layer.failed:
                raise Unmodelled(f"{layer.name} ({layer.type}): the algebra refuses the traced size, "
                                 "at which the trace ran it")
            self._check(layer, outs)
            self.outs[layer.index] = outs
        self._keeps_batch()

    def _inputs(self, layer: Layer) -> list[Sym]:
        return [self._source(src, shape) for src, shape in zip(layer.input_sources, layer.input_shapes)]

    def _source(self, src: int | None, shape: Shape) -> Sym:
        if src is None:
            return self._model_input(shape)
        return self._output_of(src, shape)

    def _model_input(self, shape: Shape) -> Sym:
        """A tensor no row made: the model's input when its shape is the input's, else a
        weight or a constant, whose size does not follow the input's."""
        first = self.layers[0].input_shapes[0] if self.layers[0].input_shapes else None
        if first is not None and tuple(shape) == tuple(first) and len(shape) == len(self.free) + 1:
            return (shape[0], *(self.grid if f else d for f, d in zip(self.free, shape[1:])))
        if len(shape) >= 2 and shape[0] == self.batch:
            # Batch-sized, yet no recorded op made it: ops the trace does not see (a model in
            # an installed package's frames may hide them) made it from the input.
            raise Unmodelled(f"{self.layers[self.index].name} reads a batch of {list(shape)} that no recorded op made")
        return tuple(shape)

    def _output_of(self, src: int, shape: Shape) -> Sym:
        layer = self.layers[src]
        if src in self.outs:
            return _matching(self.outs[src], layer.output_shapes, shape, layer.name)
        if layer.kind == "module" and not layer.is_leaf:  # a container returned a child's tensor
            for inner in range(len(self.layers) - 1, src, -1):
                if inner in self.outs and self.layers[inner].depth > layer.depth \
                        and _is_within(self.layers, src, inner) and tuple(shape) in self.layers[inner].output_shapes:
                    return _matching(self.outs[inner], self.layers[inner].output_shapes, shape, layer.name)
            inputs = self._inputs(layer)
            for given, recorded in zip(inputs, layer.input_shapes):
                if tuple(recorded) == tuple(shape):
                    return given
        raise Unmodelled(f"{layer.name}: cannot tell which tensor it passed on")

    def _check(self, layer: Layer, outs: list[Sym]) -> None:
        """The replay must give the traced shapes at the traced size: the algebra's self-check."""
        if layer.failed or not self.ok[self.at]:
            return
        got = [tuple(int(_at(d, self.at)) for d in shape) for shape in outs]
        if got != [tuple(s) for s in layer.output_shapes]:
            raise Unmodelled(f"{layer.name} ({layer.type}): the algebra gives {got}, the trace "
                             f"{[list(s) for s in layer.output_shapes]}")

    def _keeps_batch(self) -> None:
        """One sample in, one row out: a size at which the batch folds is not accepted (the
        first output's leading size, as the sweep reads it)."""
        root = self.layers[0]
        for shape in root.output_shapes[:1]:
            if shape:
                out = self._output_of(0, shape) if root.kind == "module" and not root.is_leaf else self.outs[0][0]
                self.index = 0
                self.require(np.equal(out[0], self.batch))

    def require(self, valid: Any) -> None:
        valid = np.broadcast_to(np.asarray(valid, dtype=bool), self.grid.shape)
        newly = self.ok & ~valid
        self.first[newly] = self.index
        self.ok &= valid

    # -- rows ---------------------------------------------------------------------------
    def _row(self, layer: Layer, shapes: list[Sym]) -> list[Sym]:
        if layer.kind == "module":
            handler = _MODULES.get(layer.type) or _module_family(layer.type)
        else:
            handler = _FUNCTIONS.get(layer.name)
            if handler is None and layer.name in _ELEMENTWISE_FUNCTIONS:
                handler = _broadcast_row
        if handler is None:
            raise Unmodelled(f"{layer.name} ({layer.type}) is not in the size algebra")
        if not shapes:
            raise Unmodelled(f"{layer.name} ({layer.type}) takes no tensor")
        return handler(self, layer, shapes)


def _is_within(layers: Sequence[Layer], container: int, inner: int) -> bool:
    depth = layers[container].depth
    return all(layers[i].depth > depth for i in range(container + 1, inner + 1))


def _matching(outs: list[Sym], recorded: Sequence[Shape], shape: Shape, name: str) -> Sym:
    for out, traced in zip(outs, recorded):
        if tuple(traced) == tuple(shape):
            return out
    raise Unmodelled(f"{name}: an input matches none of its outputs")


def _at(dim: Dim, i: int) -> int:
    return int(dim[i]) if isinstance(dim, np.ndarray) and dim.ndim else int(dim)


# -- the rows the algebra knows ----------------------------------------------------------
Handler = Callable[[_Replay, Layer, list[Sym]], list[Sym]]


def _broadcast_row(r: _Replay, layer: Layer, shapes: list[Sym]) -> list[Sym]:
    out = shapes[0]
    for other in shapes[1:]:
        out = _broadcast(r, out, other)
    return [out] * max(1, len(layer.output_shapes))


def _broadcast(r: _Replay, a: Sym, b: Sym) -> Sym:
    rank = max(len(a), len(b))
    a, b = (1,) * (rank - len(a)) + tuple(a), (1,) * (rank - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        r.require(np.equal(x, y) | np.equal(x, 1) | np.equal(y, 1))
        out.append(np.where(np.equal(x, 1), y, x) if isinstance(x, np.ndarray) or isinstance(y, np.ndarray)
                   else (y if x == 1 else x))
    return tuple(out)


def _elementwise_module(r: _Replay, layer: Layer, shapes: list[Sym]) -> list[Sym]:
    features = layer.attr("num_features") or layer.attr("num_channels")
    if features is not None and len(shapes[0]) > 1:
        r.require(np.equal(shapes[0][1], features))
    return [shapes[0]]


def _first_input(r: _Replay, layer: Layer, shapes: list[Sym]) -> list[Sym]:
    return [shapes[0]]


def _per_channel(r: _Replay, layer: Layer, shapes: list[Sym]) -> list[Sym]:
    """F.batch_norm and its kin: the statistics and weights are per channel, the output is
    the input's shape (they do not broadcast against its last dimension)."""
    x = shapes[0]
    if len(x) > 1:
        for stats in shapes[1:]:
            r.require(np.equal(x[1], stats[0]) if len(stats) == 1 else np.True_)
    return [x]


def _layer_norm(r: _Replay, layer: Layer, shapes: list[Sym]) -> list[Sym]:
    normalized = layer.attr("normalized_shape") or ()
    x = shapes[0]
    for dim, want in zip(x[len(x) - len(normalized):], normalized):
        r.require(np.equal(dim, want))
    return [x]


def _windowed(r: _Replay, layer: Layer, shapes: list[Sym]) -> list[Sym]:
    x = shapes[0]
    kind = _twin(layer)  # F.max_pool2d's row has MaxPool2d's attrs
    rank = arithmetic.spatial_rank(kind, layer.input_shapes[0] if layer.input_shapes else None)
    found = arithmetic.windows_from(kind, dict(layer.attrs), rank)
    channels = layer.attr("in_channels")
    if channels is not None and len(x) > (rank or 0):
        r.require(np.equal(x[-(rank or 0) - 1], channels))
    if found is None:
        if layer.attr("padding") == "same":
            return [(*x[:-(rank or 0) - 1], layer.attr("out_channels"), *x[len(x) - (rank or 0):])]
        raise Unmodelled(f"{layer.name} ({layer.type}): no fixed window")
    spatial = x[len(x) - len(found):]
    outs = tuple(_window_out(w, n) for w, n in zip(found, spatial))
    for out in outs:
        r.require(np.greater_equal(out, 1))
        r.exists &= np.broadcast_to(np.greater_equal(out, 1), r.grid.shape)
    pixels = tuple(_window_dropped(w, n, o) for w, n, o in zip(found, spatial, outs))
    if any(isinstance(p, np.ndarray) and p.any() for p in pixels):
        r.drops.append(Drops(layer.name, tuple(spatial), outs, pixels))
    lead = x[:len(x) - len(found)]
    if layer.attr("out_channels") is not None:
        lead = (*lead[:-1], layer.attr("out_channels"))
    return [(*lead, *outs)] * max(1, len(layer.output_shapes))


def _window_out(w: arithmetic.Window, n: Dim) -> Dim:
    """``arithmetic.Window.out`` on every size at once, in integer arithmetic."""
    if w.transposed:
        return (np.asarray(n) - 1) * w.stride - 2 * w.padding + w.span + w.output_padding
    top = np.asarray(n) + 2 * w.padding - w.span
    if not w.ceil_mode:
        return np.floor_divide(top, w.stride) + 1
    out = -np.floor_divide(-top, w.stride) + 1
    return np.where((out - 1) * w.stride >= np.asarray(n) + w.padding, out - 1, out)


def _window_dropped(w: arithmetic.Window, n: Dim, out: Dim) -> Dim:
    if w.transposed or w.span < w.stride:
        return 0
    covered = (np.asarray(out) - 1) * w.stride + w.span - w.padding
    return np.where(np.asarray(out) >= 1, np.maximum(0, np.asarray(n) - covered), 0)


def _adaptive(r: _Replay, layer: Layer, shapes: list[Sym]) -> list[Sym]:
    x = shapes[0]
    size = layer.attr("output_size")  # a functional row's too: see shapecheck.functional
    size = tuple(size) if isinstance(size, tuple | list) else (size,) * _rank_of(_twin(layer), x)
    for dim in x[len(x) - len(size):]:
        r.require(np.greater_equal(dim, 1))
    out = (*x[:len(x) - len(size)], *(d if s is None else s for s, d in zip(size, x[len(x) - len(size):])))
    return [out] * max(1, len(layer.output_shapes))


def _rank_of(type_name: str, x: Sym) -> int:
    digits = [c for c in type_name if c.isdigit()]
    return int(digits[-1]) if digits else len(x) - 2


def _linear(r: _Replay, layer: Layer, shapes: list[Sym]) -> list[Sym]:
    x = shapes[0]
    width = layer.attr("in_features") if layer.kind == "module" else (shapes[1][-1] if len(shapes) > 1 else None)
    out = layer.attr("out_features") if layer.kind == "module" else (shapes[1][0] if len(shapes) > 1 else None)
    if width is None or out is None:
        raise Unmodelled(f"{layer.name} ({layer.type}): no weight")
    r.require(np.equal(x[-1], width))
    return [(*x[:-1], out)]


def _embedding(r: _Replay, layer: Layer, shapes: list[Sym]) -> list[Sym]:
    return [(*shapes[0], layer.attr("embedding_dim"))]


def _flatten(r: _Replay, layer: Layer, shapes: list[Sym]) -> list[Sym]:
    x = shapes[0]
    if layer.kind == "module":
        start, end = layer.attr("start_dim", 1), layer.attr("end_dim", -1)
    else:
        start, end = _params(layer, ("start_dim", "end_dim"), (0, -1))
    if not x:
        return [(1,)]
    start, end = start % len(x), end % len(x)
    return [(*x[:start], _product(x[start:end + 1]), *x[end + 1:])]


def _product(dims: Sequence[Dim]) -> Dim:
    out: Dim = 1
    for d in dims:
        out = out * d
    return out


def _reshape(r: _Replay, layer: Layer, shapes: list[Sym]) -> list[Sym]:
    """``view``/``reshape``. Each output dimension is matched to the input dimensions whose
    traced sizes multiply to it. A -1 takes what is left; with a -1 in the call, the other
    numbers are the author's constants (``view(-1, 2880)``); without one, they were read
    off the input (``view(b, c, h * w)``) and follow it. A varying dimension split in
    several (Swin's windows) is outside the algebra."""
    x, traced_in, traced_out = shapes[0], layer.input_shapes[0], layer.output_shapes[0] if layer.output_shapes else None
    args = _shape_args(layer)
    if traced_out is None or args is None or len(args) != len(traced_out) and not layer.failed:
        raise Unmodelled(f"{layer.name} ({layer.type}): unreadable shape {layer.args!r}")
    numel = _product(x)
    if -1 in args:
        fixed = math.prod(a for a in args if a != -1)
        inferred = np.floor_divide(numel, fixed) if fixed else 0
        divides = np.equal(np.mod(numel, fixed), 0) if fixed else np.False_
        r.require(divides)
        out = tuple(inferred if a == -1 else a for a in args)
        if len(args) == 2:  # where it does not divide, the trace goes on with one row per sample
            out = tuple(np.where(divides, o, rescue) for o, rescue in zip(out, (x[0], np.floor_divide(numel, x[0]))))
        return [out]
    groups = _groups(traced_in, args)
    if groups is None:
        r.require(np.equal(numel, math.prod(args)))
        if any(isinstance(d, np.ndarray) for d in x):
            raise Unmodelled(f"{layer.name} ({layer.type}): splits a dimension that follows the input")
        return [tuple(args)]
    out_dims: list[Dim] = []
    for ins, outs in groups:
        varying = any(isinstance(x[i], np.ndarray) for i in ins)
        if varying and len(outs) > 1:
            raise Unmodelled(f"{layer.name} ({layer.type}): splits a dimension that follows the input")
        if len(outs) == 1:
            out_dims.append(_product([x[i] for i in ins]))
        elif outs:
            out_dims.extend(args[o] for o in outs)
    r.require(np.equal(numel, _product(out_dims)))  # a varying dimension of 1 here may not be 1 elsewhere
    return [tuple(out_dims)]


def _groups(before: Shape, after: Sequence[int]) -> list[tuple[list[int], list[int]]] | None:
    """Pairs of (input dims, output dims) whose sizes multiply to the same number, in order:
    [1, 48, 28, 28] -> [1, 2, 24, 28, 28] is ([0], [0]), ([1], [1, 2]), ([2], [3]), ([3], [4])."""
    groups: list[tuple[list[int], list[int]]] = []
    i = j = 0
    while i < len(before) or j < len(after):
        ins, outs = ([i] if i < len(before) else []), ([j] if j < len(after) else [])
        a, b = (before[i] if ins else 1), (after[j] if outs else 1)
        i, j = i + len(ins), j + len(outs)
        while a != b:
            if a < b:
                if i >= len(before):
                    return None
                a, i = a * before[i], i + 1
                ins.append(i - 1)
            else:
                if j >= len(after):
                    return None
                b, j = b * after[j], j + 1
                outs.append(j - 1)
        groups.append((ins, outs))
    return groups


def _permute(r: _Replay, layer: Layer, shapes: list[Sym]) -> list[Sym]:
    x, (args, kwargs) = shapes[0], _args(layer)
    dims = args[0] if len(args) == 1 and isinstance(args[0], tuple | list) else args or kwargs.get("dims")
    return [tuple(x[d % len(x)] for d in dims)]


def _transpose(r: _Replay, layer: Layer, shapes: list[Sym]) -> list[Sym]:
    x, (args, _) = list(shapes[0]), _args(layer)
    if len(args) < 2:
        if len(x) <= 2 and not args:  # .t()
            return [tuple(reversed(x))]
        raise Unmodelled(f"{layer.name}: no dimensions")
    a, b = args[0] % len(x), args[1] % len(x)
    x[a], x[b] = x[b], x[a]
    return [tuple(x)]


def _unsqueeze(r: _Replay, layer: Layer, shapes: list[Sym]) -> list[Sym]:
    x = list(shapes[0])
    (dim,) = _params(layer, ("dim",), (None,))
    dim = dim % (len(x) + 1)
    x.insert(dim, 1)
    return [tuple(x)]


def _squeeze(r: _Replay, layer: Layer, shapes: list[Sym]) -> list[Sym]:
    x = list(shapes[0])
    (dim,) = _params(layer, ("dim",), (None,))
    if dim is None or isinstance(dim, tuple | list) or isinstance(x[dim % len(x)], np.ndarray):
        raise Unmodelled(f"{layer.name}: a squeeze of a dimension that may follow the input")
    if x[dim % len(x)] == 1:
        del x[dim % len(x)]
    return [tuple(x)]


def _reduce(r: _Replay, layer: Layer, shapes: list[Sym]) -> list[Sym]:
    x = shapes[0]
    dim, keep = _params(layer, ("dim", "keepdim"), (None, False))
    if dim is None:
        return [()] * max(1, len(layer.output_shapes))
    dims = {d % len(x) for d in (dim if isinstance(dim, tuple | list) else (dim,))}
    out = tuple(1 if i in dims else d for i, d in enumerate(x) if keep or i not in dims)
    return [out] * max(1, len(layer.output_shapes))


def _cat(r: _Replay, layer: Layer, shapes: list[Sym]) -> list[Sym]:
    (dim,) = _params(layer, ("tensors", "dim"), (None, 0))[1:]
    first = shapes[0]
    dim = dim % len(first)
    for other in shapes[1:]:
        if len(other) != len(first):
            raise Unmodelled(f"{layer.name}: tensors of different ranks")
        for i, (a, b) in enumerate(zip(first, other)):
            if i != dim:
                r.require(np.equal(a, b))
    return [(*first[:dim], _sum([s[dim] for s in shapes]), *first[dim + 1:])]


def _sum(dims: Sequence[Dim]) -> Dim:
    out: Dim = 0
    for d in dims:
        out = out + d
    return out


def _chunk(r: _Replay, layer: Layer, shapes: list[Sym]) -> list[Sym]:
    x = shapes[0]
    chunks, dim = _params(layer, ("chunks", "dim"), (None, 0))
    dim = dim % len(x)
    if isinstance(x[dim], np.ndarray):
        raise Unmodelled(f"{layer.name}: chunks a dimension that follows the input")
    return [(*x[:dim], s[dim], *x[dim + 1:]) for s in layer.output_shapes]


def _interpolate(r: _Replay, layer: Layer, shapes: list[Sym]) -> list[Sym]:
    x = shapes[0]
    size, scale = layer.attr("size"), layer.attr("scale_factor")
    rank = len(x) - 2
    if size is not None:
        size = tuple(size) if isinstance(size, tuple | list) else (size,) * rank
        return [(*x[:2], *size)]
    if scale is None:
        raise Unmodelled(f"{layer.name}: neither size nor scale_factor")
    scales = tuple(scale) if isinstance(scale, tuple | list) else (scale,) * rank
    # torch: floor(in * scale), in double precision
    out = tuple(np.floor(np.asarray(d, dtype=np.float64) * float(s)).astype(np.int64) if isinstance(d, np.ndarray)
                else math.floor(d * float(s)) for d, s in zip(x[2:], scales))
    for d in out:
        r.require(np.greater_equal(d, 1))
    return [(*x[:2], *out)]


def _pad(r: _Replay, layer: Layer, shapes: list[Sym]) -> list[Sym]:
    x = list(shapes[0])
    pad = layer.attr("pad")
    if pad is None:
        raise Unmodelled(f"{layer.name}: no padding given")
    for k in range(len(pad) // 2):
        x[-1 - k] = x[-1 - k] + pad[2 * k] + pad[2 * k + 1]
    return [tuple(x)]


def _matmul(r: _Replay, layer: Layer, shapes: list[Sym]) -> list[Sym]:
    if len(shapes) < 2 or len(shapes[0]) < 2 or len(shapes[1]) < 2:
        raise Unmodelled(f"{layer.name}: a vector product")
    a, b = shapes[0], shapes[1]
    r.require(np.equal(a[-1], b[-2]))
    batch = _broadcast(r, a[:-2], b[:-2])
    return [(*batch, a[-2], b[-1])]


# -- reading a functional row's arguments -------------------------------------------------
_SIGNATURES: dict[str, tuple[str, ...]] = {
    "flatten": ("start_dim", "end_dim"), "unsqueeze": ("dim",), "squeeze": ("dim",),
    "cat": ("tensors", "dim"), "concat": ("tensors", "dim"), "concatenate": ("tensors", "dim"),
    "chunk": ("chunks", "dim"),
    "mean": ("dim", "keepdim"), "sum": ("dim", "keepdim"), "amax": ("dim", "keepdim"), "amin": ("dim", "keepdim"),
    "std": ("dim", "keepdim"), "var": ("dim", "keepdim"), "prod": ("dim", "keepdim"),
    "logsumexp": ("dim", "keepdim"),
}


def _args(layer: Layer) -> tuple[list[Any], dict[str, Any]]:
    """The row's non-tensor arguments, as ``naming.args_text`` wrote them."""
    text = layer.args.replace(" tensors]", "]")
    try:
        call = ast.parse(f"f({text})", mode="eval").body
        assert isinstance(call, ast.Call)
        args = [ast.literal_eval(a) for a in call.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
    except (SyntaxError, ValueError, AssertionError):
        raise Unmodelled(f"{layer.name}: unreadable arguments {layer.args!r}") from None
    return args, kwargs


def _params(layer: Layer, names: tuple[str, ...], defaults: tuple[Any, ...]) -> list[Any]:
    args, kwargs = _args(layer)
    signature = _SIGNATURES.get(layer.name, names)
    # A list of tensors (torch.cat's) was written as [n tensors]: it holds a positional slot.
    given = dict(zip(signature, args))
    given.update(kwargs)
    return [given.get(name, default) for name, default in zip(names, defaults)]


def _shape_args(layer: Layer) -> tuple[int, ...] | None:
    args, kwargs = _args(layer)
    if len(args) == 1 and isinstance(args[0], tuple | list):
        args = list(args[0])
    if "shape" in kwargs or "size" in kwargs:
        args = list(kwargs.get("shape") or kwargs.get("size"))
    return tuple(args) if args and all(isinstance(a, int) for a in args) else None


def _twin(layer: Layer) -> str:
    return twin_type(layer.kind, layer.name, layer.type)


def _module_family(type_name: str) -> Handler | None:
    if type_name.startswith(("Conv", "MaxPool", "AvgPool", "LPPool")):
        return _windowed
    if type_name.startswith(("AdaptiveAvgPool", "AdaptiveMaxPool")):
        return _adaptive
    if type_name in _ELEMENTWISE_MODULES:
        return _elementwise_module
    return None


_MODULES: dict[str, Handler] = {
    "Linear": _linear, "LazyLinear": _linear, "Embedding": _embedding, "Flatten": _flatten,
    "LayerNorm": _layer_norm, "RMSNorm": _layer_norm, "Upsample": _interpolate,
    "UpsamplingNearest2d": _interpolate, "UpsamplingBilinear2d": _interpolate,
}
_FUNCTIONS: dict[str, Handler] = {
    "flatten": _flatten, "view": _reshape, "reshape": _reshape, "permute": _permute,
    "transpose": _transpose, "swapaxes": _transpose, "t": _transpose, "unsqueeze": _unsqueeze,
    "squeeze": _squeeze, "cat": _cat, "concat": _cat, "concatenate": _cat, "chunk": _chunk,
    "interpolate": _interpolate, "pad": _pad, "linear": _linear, "matmul": _matmul,
    "adaptive_avg_pool1d": _adaptive, "adaptive_avg_pool2d": _adaptive, "adaptive_avg_pool3d": _adaptive,
    "adaptive_max_pool2d": _adaptive, "layer_norm": _broadcast_row,
    "batch_norm": _per_channel, "instance_norm": _per_channel, "group_norm": _first_input, "normalize": _first_input,
    **{name: _reduce for name in _REDUCTIONS},
    # Pools and convolutions called as functions: their rows carry their twin's attrs.
    **{name: _windowed for name, (twin, _) in TWINS.items() if twin.startswith(("MaxPool", "AvgPool", "Conv"))},
}
