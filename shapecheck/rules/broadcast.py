"""SHP009 for an elementwise op whose operands cannot broadcast: ``x + self.pos_embed``
sized for another resolution, a timestep embedding multiplied into a map.

The message names the module whose forward ran the op, each operand by what made it (a
layer, the model's input, or a parameter or buffer by its attribute name), the dimension
where they disagree, and the fix that fits the pattern.
"""
from __future__ import annotations

import math

from shapecheck.report import Layer, Shape
from shapecheck.rules.context import Context, shape_text

OPS = frozenset({"add", "sub", "rsub", "mul", "div", "true_divide", "floor_divide", "remainder", "pow",
                 "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge"})
_SYMBOLS = {"add": "+", "sub": "-", "rsub": "-", "mul": "*", "div": "/", "true_divide": "/", "floor_divide": "//",
            "remainder": "%", "pow": "**", "eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_EXTRA_TOKENS = (0, 1, 2)  # a class token, and a distillation token, ahead of the patches


def is_broadcast(layer: Layer) -> bool:
    return layer.name.rstrip("_") in OPS and len(layer.input_shapes) >= 2


def owner(ctx: Context, layer: Layer) -> Layer | None:
    """The module row whose forward ran ``layer``."""
    return next((l for l in reversed(ctx.layers[:layer.index]) if l.name == layer.parent and l.kind == "module"),
                None)


def message(ctx: Context, layer: Layer, torch_says: str) -> str:
    a, b = layer.input_shapes[0], layer.input_shapes[1]
    names = [_operand(ctx, layer, position) for position in (0, 1)]
    where = owner(ctx, layer)
    ran = f"in {_forward(where)}" if where is not None else "in the forward"
    line = f" at line {layer.called_at.line}" if layer.called_at is not None else ""
    op = _SYMBOLS.get(layer.name.rstrip("_"), layer.name)
    clashes = _clashes(a, b)
    clash = "; ".join(f"dimension {d} is {x} against {y}" for d, x, y in clashes)
    return (f"{ran}{line}, {names[0]} {shape_text(a)} {op} {names[1]} {shape_text(b)} cannot broadcast for "
            f"input {ctx.input_text}: aligned from the last dimension, {clash or 'the shapes disagree'}, and "
            f"only a size of 1 stretches; {_advice(ctx, layer, names, clashes)}; torch says: {torch_says}")


def _forward(module: Layer) -> str:
    return f"{module.type}.forward" if not module.depth else f"{module.name} ({module.type}).forward"


def _operand(ctx: Context, layer: Layer, position: int) -> str:
    """``self.pos_embed``, ``conv's output`` or ``the input``: a weight by its attribute name,
    also through a view or an expand of it (``self.cls_token.expand(B, -1, -1)``)."""
    weight = _weight(ctx, layer, position)
    if weight is not None:
        return f"self.{_relative(weight, layer.parent)}"
    source = ctx.producer(layer, position)
    return f"{source.name}'s output" if source is not None else "the input"


def _weight(ctx: Context, layer: Layer, position: int) -> str | None:
    if position < len(layer.input_weights) and layer.input_weights[position] is not None:
        return layer.input_weights[position]
    source = ctx.producer(layer, position)
    while source is not None and source.kind == "function" and len(source.input_shapes) == 1:
        if source.input_weights and source.input_weights[0] is not None:
            return source.input_weights[0]
        source = ctx.producer(source)
    return None


def _relative(weight: str, parent: str) -> str:
    """``blocks.0.gamma`` read inside ``blocks.0`` is its ``self.gamma``."""
    prefix = f"{parent}."
    return weight[len(prefix):] if weight.startswith(prefix) else weight


def _clashes(a: Shape, b: Shape) -> list[tuple[int, int, int]]:
    """(dimension from the end, a's size, b's size) wherever neither is 1 and they differ."""
    return [(-k, a[-k], b[-k]) for k in range(1, min(len(a), len(b)) + 1)
            if a[-k] != b[-k] and 1 not in (a[-k], b[-k])]


def _advice(ctx: Context, layer: Layer, names: list[str], clashes: list[tuple[int, int, int]]) -> str:
    a, b = layer.input_shapes[0], layer.input_shapes[1]
    for mine, other, name in ((b, a, names[1]), (a, b, names[0])):
        table = _position_table(ctx, name, mine, other, clashes)
        if table is not None:
            return table
    for short, long, name in ((b, a, names[1]), (a, b, names[0])):
        if 0 < len(short) < len(long) and tuple(long[:len(short)]) == tuple(short):
            # [B, C] against [B, C, H, W]: one value per channel, aligned with the wrong end.
            index = ", ".join([":"] * len(short) + ["None"] * (len(long) - len(short)))
            return (f"{name} lines up with the leading dimensions of the other operand: index it with "
                    f"[{index}] to make it {shape_text((*short, *(1,) * (len(long) - len(short))))}, so it "
                    f"stretches over the rest")
    d = clashes[0][0] if clashes else -1
    return f"make the two agree in dimension {d}, or make one of them 1 there"


def _position_table(ctx: Context, name: str, table: Shape, other: Shape,
                    clashes: list[tuple[int, int, int]]) -> str | None:
    """A learned position table ``[1, N, D]`` against ``[B, M, D]`` tokens: the grid and the
    input size it was built for, when the input is a square image."""
    if not name.startswith("self.") or len(table) != 3 or table[0] != 1 or len(other) != 3 \
            or [d for d, _, _ in clashes] != [-2]:
        return None
    have, want = table[1], other[1]
    text = f"{name} holds {have} positions where the sequence has {want}"
    size = ctx.square
    for extra in _EXTRA_TOKENS:
        built, grid, now = _grid(have - extra), None, _grid(want - extra)
        if built is None or now is None or size is None or size % now:
            continue
        patch = size // now
        grid = f"{built}x{built} patches of {patch}x{patch}" + (f" and {extra} extra token(s)" if extra else "")
        return (f"{text}: {grid}, so it was built for {ctx.sized(built * patch)} inputs, and "
                f"{ctx.sized(size)} makes a {now}x{now} grid; feed {ctx.sized(built * patch)}, build the model "
                f"for {ctx.sized(size)}, or interpolate the table to {now}x{now} positions")
    return f"{text}: build the model for this input's length, or resize the table"


def _grid(tokens: int) -> int | None:
    side = math.isqrt(tokens) if tokens > 0 else 0
    return side if side and side * side == tokens else None
