"""SHP004: a reshape that mixes samples, found by comparing traces at two batch sizes."""
from __future__ import annotations

from collections.abc import Iterator

from shapecheck import fix, sources
from shapecheck.report import Finding, Layer, Shape
from shapecheck.rules import registry as r
from shapecheck.rules.context import Context, is_flatten, repair, shape_text


def needs_second_trace(layers: tuple[Layer, ...], batch: int, outputs: tuple[Shape, ...], dim: int = 0) -> bool:
    """Only a reshape can fold the batch. Worth a second trace: one that folds it and the model
    never restores it (windows folded into the batch, as Swin does, come back out), or one that
    names the batch with a number. ``dim`` is where the inputs keep the batch."""
    reshapes = [l for l in layers if _reshape(l) and _has(l.input_shapes[0], batch, dim)]
    lost = bool(outputs) and bool(outputs[0]) and not _has(outputs[0], batch, dim)
    # An output that does not lead with the batch is worth the second trace by itself (SHP109).
    return lost or any(_names_batch(l, batch) for l in reshapes)


def check(ctx: Context) -> Iterator[Finding]:
    if ctx.second is None or ctx.batch_dim is None:
        return
    other, lost, dim = ctx.batch + 1, _loses_batch(ctx), ctx.batch_dim
    for first, second in zip(ctx.layers, ctx.second.layers):
        if (first.name, first.called_at) != (second.name, second.called_at):
            return  # the two traces took different paths; nothing more is comparable
        if not (_reshape(first) and not first.failed and _has(first.input_shapes[0], ctx.batch, dim)
                and second.input_shapes and _has(second.input_shapes[0], other, dim)):
            continue
        breaks = second.failed or not second.output_shapes  # a size that only fits one batch
        folds = not (_has(first.output_shapes[0], ctx.batch, dim) and _has(second.output_shapes[0], other, dim))
        if breaks or (folds and lost and not _merges_steps(first, dim)):
            yield _finding(ctx, first, second)
            return  # everything downstream inherits the fold
    # A model that returns dicts per sample (a detector's list of {boxes, labels}) has no
    # batch dimension to follow; one whose output rows grow with the batch has kept the
    # samples apart (a language model's [T*B, vocab] logits, ready for the loss).
    if lost and ctx.completed and ctx.outputs and ctx.outputs[0] and not ctx.output_names \
            and not _grows_with_batch(ctx):
        yield _output_finding(ctx)


def _output_finding(ctx: Context) -> Finding:
    """SHP109: no reshape folds the batch, yet the output does not follow it."""
    second = ctx.second.outputs[0] if ctx.second is not None and ctx.second.outputs else None
    last = next((l for l in reversed(ctx.layers) if l.output_shapes and l.output_shapes[0] == ctx.outputs[0]), None)
    made = f"; it comes from {last.name} ({last.type})" if last is not None and last.depth else ""
    return r.OUTPUT_LOSES_BATCH.finding(
        f"the output {shape_text(ctx.outputs[0])} at batch {ctx.batch} is "
        f"{shape_text(second) if second else 'missing'} at batch {ctx.batch + 1}: its first dimension does not "
        f"follow the batch for input {ctx.input_text}{made}; a reduction or an index over dimension 0, or a "
        "time-first layer, took the batch away", last.defined_at or last.called_at if last is not None else None,
        layer=last.name if last is not None else None, called_at=last.called_at if last is not None else None)


def _loses_batch(ctx: Context) -> bool:
    """The model's output does not keep the batch where the inputs have it, at one of the two
    batch sizes."""
    second, dim = ctx.second, ctx.batch_dim or 0
    return (bool(ctx.outputs) and not _has(ctx.outputs[0], ctx.batch, dim)) or (
        second is not None and (not second.outputs or not _has(second.outputs[0], ctx.batch + 1, dim)))


def _grows_with_batch(ctx: Context) -> bool:
    """The first output's first dimension is a whole number of rows per sample, at both batches."""
    first = ctx.outputs[0]
    second = ctx.second.outputs[0] if ctx.second is not None and ctx.second.outputs else None
    if second is None or len(first) != len(second) or not first or first[0] % ctx.batch:
        return False
    return first[0] > ctx.batch and second[0] == first[0] // ctx.batch * (ctx.batch + 1)


def _merges_steps(layer: Layer, dim: int) -> bool:
    """``[T, B, H] -> [T*B, H]`` (or ``[B, T, H] -> [B*T, H]``): the batch merged with the one
    dimension beside it, the rest kept. Each row is still one sample's step, as sequence models
    lay out their logits for the loss; a reshape that splits features across rows is not this."""
    shape, out = layer.input_shapes[0], layer.output_shapes[0]
    return dim <= 1 and len(shape) >= 3 and len(out) == len(shape) - 1 \
        and out[0] == shape[0] * shape[1] and out[1:] == shape[2:]


def _reshape(layer: Layer) -> bool:
    return is_flatten(layer) and bool(layer.input_shapes) and bool(layer.output_shapes)


def _has(shape: tuple[int, ...], batch: int, dim: int) -> bool:
    """The batch is at ``dim`` of ``shape``."""
    return shape[dim:dim + 1] == (batch,)


def _names_batch(layer: Layer, batch: int) -> bool:
    """The first size equals the batch and the source writes it as a number: ``view(64, -1)``,
    or a name that only ever holds one (``BATCH = 64``, ``self.bs = 64``).

    ``x.view(x.size(0), -1)`` or ``reshape(n, ...)`` track the batch; only a constant can be
    stale, so only a constant costs a second trace.
    """
    if layer.args.split(",")[0].strip().lstrip("(") != str(batch):
        return False
    call = sources.method_call(layer.called_at, layer.name) if layer.called_at else None
    if call is None or not call.args:
        return True
    first = call.args[0]
    return first.literal or sources.names_a_constant(layer.called_at, first.text)


def _finding(ctx: Context, first: Layer, second: Layer) -> Finding:
    rows = first.output_shapes[0][0] if first.output_shapes[0] else 1
    if rows != ctx.batch and rows % ctx.batch == 0:
        what = f"each sample becomes {rows // ctx.batch} rows"
    elif rows != ctx.batch:
        what = f"{ctx.batch} samples become {rows} rows"
    else:
        what = "the batch size is hard-coded"
    later = (shape_text(second.output_shapes[0]) if second.output_shapes and not second.failed
             else "an error")
    return r.BATCH_FOLDED.finding(
        f"{first.name}({first.args}) does not keep the batch: {shape_text(first.input_shapes[0])} -> "
        f"{shape_text(first.output_shapes[0])} at batch {ctx.batch}, {shape_text(second.input_shapes[0])} -> "
        f"{later} at batch {ctx.batch + 1}; {what} for input {ctx.input_text}; "
        "use x.flatten(1) or x.view(x.size(0), -1)",
        first.called_at, layer=first.name, **repair(fix.flatten_call(first), "x.flatten(1)"))
