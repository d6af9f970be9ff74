"""Crash rules: each failure from the trace becomes one finding with the real numbers."""
from __future__ import annotations

import ast
import math
from collections.abc import Iterator

from shapecheck import arithmetic, fix
from shapecheck.report import Finding, Layer
from shapecheck.rules import broadcast
from shapecheck.rules import registry as r
from shapecheck.rules.context import Context, factors, repair, shape_text
from shapecheck.sizes import ranges
from shapecheck.sources import parse_expression
from shapecheck.trace import Failure

# Names that a forward commonly uses without importing them, and the import that fixes it.
IMPORT_HINTS = {
    "F": "import torch.nn.functional as F", "nn": "import torch.nn as nn",
    "torch": "import torch", "np": "import numpy as np", "math": "import math",
    "einops": "import einops", "rearrange": "from einops import rearrange",
}


def check(ctx: Context) -> Iterator[Finding]:
    for failure in ctx.failures:
        layer = ctx.layers[failure.index] if failure.index is not None else None
        if failure.kind == "code" or layer is None:
            yield _forward_error(failure, layer)
        elif layer.kind == "function":
            yield _function_failure(ctx, failure, layer)
        else:
            yield _module_failure(ctx, failure, layer)


def _forward_error(failure: Failure, layer: Layer | None) -> Finding:
    where = f"{layer.name}: " if layer is not None and layer.depth else ""
    hint = None
    if failure.exception == "NameError":
        missing = failure.message.split("'")[1] if failure.message.count("'") >= 2 else ""
        hint = IMPORT_HINTS.get(missing)
    message = f"{where}{failure.exception}: {failure.message}"
    location = failure.location or (layer.called_at if layer else None)
    if hint:
        message += f"; add `{hint}` at the top of the file"
    extra = repair(fix.add_import(location.path, hint), hint) if hint and location else {"hint": hint}
    return r.FORWARD_ERROR.finding(message, location, layer=layer.name if layer else None, **extra)


def _module_failure(ctx: Context, failure: Failure, layer: Layer) -> Finding:
    got = layer.input_shapes[0] if layer.input_shapes else ()
    where = dict(location=layer.defined_at or layer.called_at, layer=layer.name, called_at=layer.called_at)
    if layer.attr("in_features") is not None and failure.expected:
        _, shape = ctx.origin(layer)
        if _unflattened(ctx, layer):  # the fix is a flatten in forward, not another in_features
            return r.LINEAR_MISMATCH.finding(_linear_message(ctx, layer), **where, hint="x.flatten(1)")
        return r.LINEAR_MISMATCH.finding(_linear_message(ctx, layer), **where,
                                         **repair(fix.in_features(layer, got[-1], shape)))
    declared = layer.attr("in_channels", layer.attr("num_features", layer.attr("num_channels")))
    if declared is not None and failure.expected and len(got) > 1:
        if failure.how == "channels_last":
            return r.CHANNELS_LAST.finding(_channels_last_message(ctx, layer, declared), **where,
                                           hint="permute(0, 3, 1, 2)")
        source, _ = ctx.origin(layer)
        origin = f" from {source.name} {shape_text(source.output_shapes[0])}" if source and source.output_shapes else ""
        key = next(k for k in ("in_channels", "num_features", "num_channels") if layer.attr(k) is not None)
        advice = f"set {key}={got[1]} or change the layer before it"
        if len(got) == 3 and got[-1] == declared:
            # [B, L, C] where [B, C, L] belongs: a sequence whose length sits in the channel slot.
            advice = (f"the input looks like [B, L, C] = {shape_text(got)} with its {declared} channels last, "
                      f"where {layer.type} reads [B, C, L]: feed it x.transpose(1, 2)")
        return r.CHANNEL_MISMATCH.finding(
            f"{layer.name}: {layer.type} expects {key}={declared} but receives {got[1]} channels"
            f"{origin} for input {ctx.input_text}; {advice}", **where)
    if failure.how == "hidden":
        return r.SHAPE_ERROR.finding(_hidden_message(ctx, layer, got), **where)
    width = _width_message(ctx, layer, got)
    if width is not None and failure.expected:
        return r.SHAPE_ERROR.finding(width, **where)
    kernel = layer.attr("kernel_size")
    rank = arithmetic.spatial_rank(layer.type, None) if kernel is not None else None
    if rank is not None and len(got) != rank + 2:
        return r.SHAPE_ERROR.finding(_rank_message(ctx, layer, got, rank), **where)
    if kernel is not None and len(got) > 2:
        return r.INPUT_TOO_SMALL.finding(_too_small_message(ctx, layer, got, kernel), **where)
    return r.SHAPE_ERROR.finding(
        f"{layer.name}: {layer.type} failed on input {_shapes(layer)}: {failure.message}", **where)


def _hidden_message(ctx: Context, layer: Layer, got: tuple[int, ...]) -> str:
    """An RNN whose input is right but whose initial hidden state is not."""
    batch = got[0] if layer.attr("batch_first") and len(got) == 3 else got[1] if len(got) == 3 else None
    given = ", ".join(shape_text(s) for s in layer.input_shapes[1:]) or "the one given"
    want = f"[num_layers * directions, {batch}, {layer.attr('hidden_size')}]" if batch is not None else \
        f"[num_layers * directions, {layer.attr('hidden_size')}]"
    return (f"{layer.name}: {layer.type}'s initial hidden state must be {want} for its input {shape_text(got)} "
            f"but is {given} for input {ctx.input_text}; build h_0 from the input's batch "
            f"(x.size({0 if layer.attr('batch_first') else 1})), or leave it out for zeros")


def _width_message(ctx: Context, layer: Layer, got: tuple[int, ...]) -> str | None:
    """A sequence layer's declared feature width against the one it receives, or an
    Embedding fed floats; None for other layers."""
    source = ctx.producer(layer)
    origin = f" from {source.name}" if source is not None else ""
    received = f"{shape_text(got)}{origin} for input {ctx.input_text}"
    size = layer.attr("input_size")
    if size is not None and got:
        return (f"{layer.name}: {layer.type} expects input_size={size} features per step but receives "
                f"{got[-1]} in {received}; set input_size={got[-1]} or change the layer before it")
    embed = layer.attr("embed_dim")
    if embed is not None and got:
        return (f"{layer.name}: {layer.type} expects embed_dim={embed} but the query has {got[-1]} "
                f"features in {received}; set embed_dim={got[-1]} or project the query to {embed}")
    shape = layer.attr("normalized_shape")
    if shape is not None and got:
        want = "x".join(map(str, shape))
        have = "x".join(map(str, got[len(got) - len(shape):]))
        return (f"{layer.name}: {layer.type} normalizes the last dimensions {want} but they are {have} "
                f"in {received}; set normalized_shape to {have}")
    if layer.attr("num_embeddings") is not None and ctx.inputs:
        dims = "x".join(map(str, ctx.inputs[0].shape))
        return (f"{layer.name}: {layer.type} takes integer indices but receives floats {received}; "
                f"give the input an integer dtype: --input {dims}:int64")
    return None


def _linear_message(ctx: Context, layer: Layer) -> str:
    declared = layer.attr("in_features")
    received = layer.input_shapes[0][-1]
    if _unflattened(ctx, layer):
        return _unflattened_message(ctx, layer, declared, layer.input_shapes[0])
    expression = layer.written_as("in_features")
    # The author's expression, when it is the number itself (not a helper's parameter name).
    written = f" ({expression})" if expression and expression != str(declared) \
        and _evaluates_to(expression, declared) else ""
    source, shape = ctx.origin(layer)
    origin = f" from {source.name} {shape_text(shape)}" if source is not None else f" {shape_text(shape)}"
    breakdown = f" = {factors(shape)}" if len(shape) > 2 else ""
    return (f"{layer.name}: Linear expects in_features={declared}{written} but receives "
            f"{received}{breakdown}{origin} for input {ctx.input_text}{_fits(ctx, layer, declared)}")


def _evaluates_to(expression: str, value: int) -> bool:
    """Integer arithmetic that equals ``value``; an expression of names cannot be checked."""
    tree = parse_expression(expression)
    if tree is None:
        return False
    if not all(isinstance(n, ast.BinOp | ast.UnaryOp | ast.Constant | ast.operator | ast.unaryop)
               for n in ast.walk(tree)):
        return False
    try:
        return eval(compile(ast.Expression(tree), "<in_features>", "eval"), {"__builtins__": {}}) == value  # literals only
    except (ArithmeticError, TypeError):
        return False


def _unflattened(ctx: Context, layer: Layer) -> bool:
    """A map the author meant to flatten: an image-like [B, C, H, W], or C*H*W features declared."""
    got = layer.input_shapes[0]
    return ctx.flattened(layer) is None and len(got) > 2 and (
        len(got) >= 4 or layer.attr("in_features") == math.prod(got[1:]))


def _unflattened_message(ctx: Context, layer: Layer, declared: int, got: tuple[int, ...]) -> str:
    """A Linear fed a [B, C, H, W] map: PyTorch multiplies only its last dimension."""
    source = ctx.producer(layer)
    origin = f" from {source.name}" if source is not None else ""
    width = math.prod(got[1:])
    matches = f", which is in_features={declared}" if width == declared else \
        f"; then set in_features={width}" if declared != got[-1] else ""
    return (f"{layer.name}: Linear receives the unflattened map {shape_text(got)}{origin} for input "
            f"{ctx.input_text}: PyTorch applies it to the last dimension only ({got[-1]} features, not "
            f"in_features={declared}); flatten it first with x.flatten(1), giving {factors(got)} = {width} "
            f"features per sample{matches}")


def _fits(ctx: Context, layer: Layer, declared: int) -> str:
    """``; 2880 fits 60x60 to 63x63 inputs``: what the author's number was computed for."""
    size, solver = ctx.square, ctx.solver_for(r.LINEAR_MISMATCH.code)
    if solver is None or size is None:
        return ""
    fits = solver.fits(layer.name, declared, size)
    if not fits and solver.width_varies(layer.name, size):
        return f"; {declared} fits no input from {ctx.sized(1)} to {ctx.sized(2 * size)}"
    if not fits:
        return ""  # the width does not follow the input size (adaptive pooling): no size would fit
    span = ctx.sized(fits[0]) if len(fits) == 1 else f"{ctx.sized(fits[0])} to {ctx.sized(fits[-1])}"
    gaps = "" if fits == tuple(range(fits[0], fits[-1] + 1)) else f" (sizes {ranges(fits)})"
    return f"; {declared} fits {span} inputs{gaps}"


def _channels_last_message(ctx: Context, layer: Layer, declared: int) -> str:
    shape = ctx.inputs[0].shape
    fixed = "x".join(str(d) for d in (shape[-1], *shape[:-1]))
    return (f"{layer.name}: {layer.type} expects {declared} input channels but the input "
            f"{ctx.inputs[0]} has {shape[0]} in dimension 1; it looks channels-last. PyTorch images "
            f"are [B, C, H, W]: pass --input {fixed}, or call x.permute(0, 3, 1, 2) on the data")


def _rank_message(ctx: Context, layer: Layer, got: tuple[int, ...], rank: int) -> str:
    axes = {1: "L", 2: "H, W", 3: "D, H, W"}.get(rank, "...")
    advice = "check the reshape before it"
    channels = layer.attr("in_channels")
    if ctx.producer(layer) is None and len(got) == rank + 1 and channels is not None \
            and ctx.inputs[0].shape[0] != channels:
        # [B, H, W] into Conv2d: PyTorch reads it as one unbatched image whose channels are the batch.
        spec = "x".join(map(str, (channels, *ctx.inputs[0].shape)))
        return (f"{layer.name}: {layer.type} expects [B, C, {axes}] but receives {shape_text(got)} for input "
                f"{ctx.input_text}: the channel dimension is missing, so PyTorch reads the batch as "
                f"{got[0]} channels; pass --input {spec}, or add it to the data with x.unsqueeze(1)")
    if ctx.producer(layer) is None:  # fed by the input itself: the spec has the wrong rank
        shape, want = ctx.inputs[0].shape, rank + 1
        # The sizes given are kept, the missing ones named: repeating a size (100 -> 100x100x100)
        # would invent an image the user never described.
        names = ("C", *axes.split(", "))
        example = [str(d) for d in shape[:want]] + list(names[len(shape):want])
        missing = " and ".join(names[len(shape):want])
        advice = (f"give one sample's shape without the batch as C x {axes.replace(', ', ' x ')}, "
                  f"e.g. --input {'x'.join(example)}" + (f" with your data's {missing}" if missing else ""))
    return (f"{layer.name}: {layer.type} expects [B, C, {axes}] ({rank + 2} dimensions) but receives "
            f"{shape_text(got)} for input {ctx.input_text}; {advice}")


def _too_small_message(ctx: Context, layer: Layer, got: tuple[int, ...], kernel: object) -> str:
    spatial = got[2:] if len(got) > 2 else got[1:]
    sizes = kernel if isinstance(kernel, tuple) else (kernel,) * len(spatial)
    dilation = layer.attr("dilation", 1)
    dilations = dilation if isinstance(dilation, tuple) else (dilation,) * len(spatial)
    span = tuple((k - 1) * d + 1 for k, d in zip(sizes, dilations))
    source = ctx.producer(layer)
    after = f" after {source.name}" if source is not None else ""
    return (f"{layer.name}: input too small for input {ctx.input_text}: the map is "
            f"{'x'.join(map(str, spatial))}{after} but {layer.type} needs at least "
            f"{'x'.join(map(str, span))}; {_smallest(ctx)}use a larger input, padding, or fewer pooling stages")


def _smallest(ctx: Context) -> str:
    size = ctx.square
    solver = ctx.solver_for(r.INPUT_TOO_SMALL.code)
    smallest = solver.smallest(size) if solver is not None and size is not None else None
    if smallest is None:
        return ""
    return f"the smallest input that runs is {ctx.sized(smallest)}; "


def _function_failure(ctx: Context, failure: Failure, layer: Layer) -> Finding:
    where = dict(location=layer.called_at, layer=layer.name)
    start = _leading_int(layer.args)
    if layer.name == "flatten" and layer.input_shapes and start is not None and start >= len(layer.input_shapes[0]):
        shape = layer.input_shapes[0]
        return r.SHAPE_ERROR.finding(
            f"flatten({layer.args}) starts at dimension {start} but {shape_text(shape)} has only {len(shape)} "
            f"dimensions for input {ctx.input_text}; it is already flat from dimension {len(shape) - 1}: "
            f"drop the flatten or start it at a dimension below {len(shape)}", **where)
    if layer.name in ("view", "reshape", "flatten") and layer.input_shapes:
        shape = layer.input_shapes[0]
        per_sample = math.prod(shape[1:])
        return r.INVALID_RESHAPE.finding(
            f"{layer.name}({layer.args}) cannot reshape {shape_text(shape)} "
            f"({math.prod(shape)} elements): each sample has {per_sample} = {factors(shape)} "
            f"for input {ctx.input_text}; use x.flatten(1) or x.view(x.size(0), -1)",
            **where, **repair(fix.flatten_call(layer), "x.flatten(1)"))
    if broadcast.is_broadcast(layer):
        ran = broadcast.owner(ctx, layer)
        return r.SHAPE_ERROR.finding(broadcast.message(ctx, layer, failure.message), location=layer.called_at,
                                     layer=ran.name if ran is not None else layer.name)
    if layer.name in _JOINS and len(layer.input_shapes) >= 2:
        return r.SHAPE_ERROR.finding(_join_message(ctx, failure, layer), **where)
    return r.SHAPE_ERROR.finding(
        f"{layer.type} failed on inputs {_shapes(layer)}: {failure.message}", **where)


_JOINS = frozenset({"cat", "concat", "concatenate", "stack", "hstack", "vstack"})


def _join_message(ctx: Context, failure: Failure, layer: Layer) -> str:
    """A join of branches whose maps disagree: which module made each, and which sizes work."""
    parts = []
    for position, shape in enumerate(layer.input_shapes):
        source = ctx.producer(layer, position)
        parts.append(f"{source.name if source is not None else 'the input'} {shape_text(shape)}")
    line = f" (called at line {source.called_at.line})" if (source := ctx.producer(layer, 1)) and source.called_at else ""
    spatial = {s[2:] for s in layer.input_shapes if len(s) > 2}
    hint = ""
    if len(spatial) > 1 and ctx.square is not None and ctx.solver_for(r.SHAPE_ERROR.code) is not None:
        below, above = ctx.solver.nearest(ctx.square)  # type: ignore[union-attr]
        sizes = [s for s in (below, above) if s is not None]
        period = above - below if below is not None and above is not None else None
        multiple = f"inputs that are multiples of {period} work; " if period and below % period == 0 \
            and above % period == 0 and period > 1 else ""
        hint = f"; the spatial sizes differ after down- and upsampling: {multiple}" + (
            f"the nearest that run are {' and '.join(ctx.sized(s) for s in sizes)}" if sizes else "no nearby size runs")
    return (f"{layer.type} of {', '.join(parts)} failed for input {ctx.input_text}: the maps must agree in every "
            f"dimension but the joined one{line}{hint}; torch says: {failure.message}")


def _leading_int(args: str) -> int | None:
    first = args.split(",")[0].strip().removeprefix("start_dim=")
    return int(first) if first.lstrip("-").isdigit() else None


def _shapes(layer: Layer) -> str:
    return ", ".join(shape_text(s) for s in layer.input_shapes) or "(none)"


def check_output(ctx: Context) -> Iterator[Finding]:
    """SHP007: the output (without its batch) against ``--output``."""
    if ctx.expected_output is None or not ctx.outputs:
        return
    actual = ctx.outputs[0][1:]
    if tuple(actual) != tuple(ctx.expected_output):
        last = next((l for l in reversed(ctx.layers) if l.is_leaf and l.output_shapes), None)
        maker = _shape_maker(ctx, last) if last is not None else None
        yield r.OUTPUT_MISMATCH.finding(
            f"output is {'x'.join(map(str, actual))} per sample but "
            f"{'x'.join(map(str, ctx.expected_output))} was expected for input {ctx.input_text}"
            + (f"; {maker.name} ({maker.type}) makes that shape: {_made(maker)}" if maker else ""),
            (maker.defined_at or maker.called_at) if maker else None, layer=maker.name if maker else None,
            called_at=maker.called_at if maker else None)


def _shape_maker(ctx: Context, layer: Layer) -> Layer:
    """The last layer that changed the shape on the way to ``layer``: past a Sigmoid, a
    ReLU or a norm, which keep it, to the conv or pool whose arithmetic made it."""
    while layer.input_shapes and layer.output_shapes and layer.input_shapes[0] == layer.output_shapes[0]:
        before = ctx.producer(layer)  # always an earlier row: the walk ends
        if before is None:
            break
        layer = before
    return layer


def _made(layer: Layer) -> str:
    from shapecheck.explain import arithmetic_line

    line = arithmetic_line(layer)
    shapes = f"{shape_text(layer.input_shapes[0])} -> {shape_text(layer.output_shapes[0])}" \
        if layer.input_shapes and layer.output_shapes else ""
    return f"{line.partition(': ')[2]} ({shapes})" if line and shapes else line or shapes
