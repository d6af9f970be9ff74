"""Checkpoint reconciliation: the saved tensors against the model's, key by key."""
from __future__ import annotations

from collections.abc import Iterator, Mapping

from shapecheck.report import Finding, Shape
from shapecheck.rules import registry as r
from shapecheck.rules.context import Context, shape_text
from shapecheck.sizes import ranges

_SHOWN = 6


def check(ctx: Context, model: Mapping[str, Shape], saved: Mapping[str, Shape]) -> Iterator[Finding]:
    for key in model.keys() & saved.keys():
        if model[key] != saved[key]:
            yield _mismatch(ctx, key, model[key], saved[key])
    missing = sorted(model.keys() - saved.keys())
    if missing:
        yield r.CHECKPOINT_MISSING.finding(
            f"the checkpoint lacks {len(missing)} of the model's {_tensors(len(model))}: {_listed(missing)}; "
            "load_state_dict(strict=True) will fail", ctx.locate(""))
    unexpected = sorted(saved.keys() - model.keys())
    if unexpected:
        yield r.CHECKPOINT_UNEXPECTED.finding(
            f"the checkpoint has {_tensors(len(unexpected))} the model does not: {_listed(unexpected)}",
            ctx.locate(""))


def _mismatch(ctx: Context, key: str, mine: Shape, theirs: Shape) -> Finding:
    owner = key.rpartition(".")[0]
    message = (f"checkpoint {key} is {shape_text(theirs)} but the model's is {shape_text(mine)}"
               f"{_trained_on(ctx, owner, key, mine, theirs)}")
    return r.CHECKPOINT_MISMATCH.finding(message, ctx.locate(owner), layer=owner)


def _trained_on(ctx: Context, owner: str, key: str, mine: Shape, theirs: Shape) -> str:
    """For a Linear whose input width differs, the input sizes the checkpoint was trained on."""
    layer = next((l for l in ctx.layers if l.name == owner and l.attr("in_features") is not None), None)
    size, solver = ctx.square, ctx.solver_for(r.CHECKPOINT_MISMATCH.code)
    if layer is None or not key.endswith(".weight") or len(theirs) != 2 or mine[0] != theirs[0] \
            or solver is None or size is None:
        return ""
    fits = solver.fits(owner, theirs[1], size)
    if not fits:
        return f": it expects {theirs[1]} input features, which no input from {ctx.sized(1)} to {ctx.sized(2 * size)} gives"
    px = f"{fits[0]}" if len(fits) == 1 else ranges(fits)
    return f": it was trained on {px} px inputs ({ctx.sized(fits[0])}), you are feeding {ctx.input_text}"


def _listed(keys: list[str]) -> str:
    more = f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def _tensors(n: int) -> str:
    return f"{n} tensor" if n == 1 else f"{n} tensors"
