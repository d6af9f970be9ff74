"""SHP101: strided windows that never read the last rows or columns of their input."""
from __future__ import annotations

from collections.abc import Iterator

from shapecheck import arithmetic
from shapecheck.report import Finding, Layer
from shapecheck.rules import registry as r
from shapecheck.rules.context import Context


def check(ctx: Context) -> Iterator[Finding]:
    seen: set[tuple[str, tuple[int, ...]]] = set()
    for layer in ctx.layers:
        found = arithmetic.windows(layer) if layer.input_shapes and not layer.failed else None
        if found is None or len(layer.input_shapes[0]) < len(found):
            continue
        spatial = layer.input_shapes[0][-len(found):]
        lost = tuple(w.dropped(n) for w, n in zip(found, spatial))
        if any(lost) and (layer.name, spatial) not in seen:
            seen.add((layer.name, spatial))
            yield r.DROPPED_PIXELS.finding(_message(ctx, layer, found, spatial, lost),
                                           layer.defined_at or layer.called_at, layer=layer.name,
                                           called_at=layer.called_at)


def _message(ctx: Context, layer: Layer, found: tuple[arithmetic.Window, ...],
             spatial: tuple[int, ...], lost: tuple[int, ...]) -> str:
    out = "x".join(str(w.out(n)) for w, n in zip(found, spatial))
    axes = (("row", "rows"), ("column", "columns")) if len(found) == 2 else tuple(
        (f"pixel of dim {i + 2}", f"pixels of dim {i + 2}") for i in range(len(found)))
    parts = [f"the last {one}" if n == 1 else f"the last {n} {many}" for n, (one, many) in zip(lost, axes) if n]
    window = found[0]
    example = next(n for n, k in zip(spatial, lost) if k)
    # Convolutions have no ceil_mode: padding is their remedy.
    remedy = "padding" if layer.type.startswith("Conv") else "ceil_mode=True, padding"
    return (f"{layer.name}: {layer.type}({window.describe()}) turns {'x'.join(map(str, spatial))} into "
            f"{out} and never reads {' and '.join(parts)} ({window.formula(example)}) for input "
            f"{ctx.input_text}; use {remedy}, or an input size that divides evenly")
