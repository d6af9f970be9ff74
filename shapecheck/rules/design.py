"""Architecture smells: layers that run but waste parameters, compute or input sizes."""
from __future__ import annotations

from collections.abc import Iterator

from shapecheck.report import Finding, Layer
from shapecheck.rules import registry as r
from shapecheck.rules.context import Context, factors
from shapecheck.sizes import ranges

_SOFTMAX = frozenset({"softmax", "log_softmax", "Softmax", "LogSoftmax"})
_BATCHNORM = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm")
DOMINANT_SHARE = 0.5


def check(ctx: Context) -> Iterator[Finding]:
    yield from _unused(ctx)
    yield from _bias_before_norm(ctx)
    yield from _softmax_output(ctx)
    yield from _flattened_linears(ctx)
    yield from _rnn_batch_first(ctx)
    yield from _decoder_off_by(ctx)


_NEAR = 4  # pixels: further off, the output is a different resolution by design, not a near miss


def _decoder_off_by(ctx: Context) -> Iterator[Finding]:
    """SHP108: an output map as deep as the input whose spatial size misses the input's by a few pixels."""
    if not ctx.completed or not ctx.outputs or not ctx.inputs:
        return
    given, out = ctx.inputs[0].shape, ctx.outputs[0][1:]
    ups = [l for l in ctx.layers if l.type.startswith("ConvTranspose") and l.input_shapes and l.output_shapes]
    if len(out) != len(given) or len(given) < 2 or not ups or out[1:] == given[1:] \
            or any(abs(a - b) > _NEAR for a, b in zip(out[1:], given[1:])):
        return
    steps = "; ".join(f"{l.name}: {_up_formula(l)}" for l in ups)
    last = ups[-1]
    yield r.DECODER_OFF_BY.finding(
        f"{last.name}: the output is {'x'.join(map(str, out[1:]))} but the input is "
        f"{'x'.join(map(str, given[1:]))} (input {ctx.input_text}): the upsampling does not undo the "
        f"downsampling ({steps}); "
        "set output_padding (or padding) on the transposed convolution so the sizes meet",
        last.defined_at or last.called_at, layer=last.name, called_at=last.called_at)


def _up_formula(layer: Layer) -> str:
    from shapecheck import arithmetic

    found = arithmetic.windows(layer)
    n = layer.input_shapes[0][-1]
    return found[-1].formula(n) if found else f"{n} -> {layer.output_shapes[0][-1]}"


_RNNS = frozenset({"RNN", "LSTM", "GRU"})


def _rnn_batch_first(ctx: Context) -> Iterator[Finding]:
    """SHP107: a time-first RNN whose dimension 0 carries the batch, in this trace and, when
    there is one, in the trace at batch + 1 (so a sequence as long as the batch is not mistaken).
    Inputs declared sequence-first (``batch_dim=1``) are what such a layer reads."""
    if ctx.batch_dim != 0:
        return
    second = {l.name: l for l in ctx.second.layers} if ctx.second is not None else {}
    for layer in ctx.layers:
        if layer.type not in _RNNS or layer.attr("batch_first") is not False or not layer.input_shapes \
                or len(layer.input_shapes[0]) != 3 or layer.input_shapes[0][0] != ctx.batch:
            continue
        other = second.get(layer.name)
        if other is not None and other.input_shapes and other.input_shapes[0][:1] != (ctx.batch + 1,):
            continue
        shape = layer.input_shapes[0]
        yield r.RNN_BATCH_FIRST.finding(
            f"{layer.name}: {layer.type} has batch_first=False, so it reads {list(shape)} as [T={shape[0]}, "
            f"B={shape[1]}, F={shape[2]}]: dimension 0 is the batch of {ctx.batch} for input {ctx.input_text}, "
            f"and the layer runs across the samples as if they were time steps; pass batch_first=True, "
            f"or feed it x.transpose(0, 1); if the model's inputs are [T, B, ...] themselves, check it with "
            f"--batch-dim 1 (batch_dim=1)", layer.defined_at or layer.called_at, layer=layer.name,
            called_at=layer.called_at)


def _unused(ctx: Context) -> Iterator[Finding]:
    """SHP102: report the outermost modules that neither run nor lend a parameter to the forward."""
    if not ctx.completed:
        return  # an aborted forward never reached the later layers
    called = {layer.name for layer in ctx.layers if layer.kind == "module"}
    # A parameter the forward read directly keeps its owner, and everything above it, alive;
    # so does reading the submodule itself (an attention dropout whose p is read, a helper
    # used through its methods).
    live = _with_ancestors(called | ctx.fetched | {p.rpartition(".")[0] for p in ctx.touched})
    for m in ctx.submodules:
        if m.type == "Identity" or m.referenced:
            # A placeholder (drop-path off, no norm) has nothing to call or delete; a module
            # the forward's code names is used on a path this trace did not take.
            continue
        if m.name and m.name not in live and m.name.rpartition(".")[0] in live:
            params = f"its {m.numel:,} parameters are" if m.numel else "it has no parameters, but it is"
            yield r.UNUSED_SUBMODULE.finding(
                f"{m.name} ({m.type}) is defined but never called in forward for input "
                f"{ctx.input_text}; {params} dead weight: call it or delete it",
                ctx.locate(m.name), layer=m.name)


def _with_ancestors(names: set[str]) -> set[str]:
    out = {""} | names
    for name in names:
        while name:
            name = name.rpartition(".")[0]
            out.add(name)
    return out


def _bias_before_norm(ctx: Context) -> Iterator[Finding]:
    """SHP103: BatchNorm subtracts the mean, so the bias of the layer before it cancels out."""
    seen: set[str] = set()
    for layer in ctx.layers:
        source = ctx.producer(layer) if layer.type in _BATCHNORM and not layer.failed else None
        if source is None or source.attr("bias") is not True or source.name in seen:
            continue
        seen.add(source.name)
        channels = source.attr("out_channels", source.attr("out_features"))
        yield r.BIAS_BEFORE_NORM.finding(
            f"{source.name}: {source.type} has bias=True but feeds {layer.name} ({layer.type}) directly, "
            f"which subtracts each channel's mean: its {channels} bias parameters do nothing; "
            "pass bias=False", source.defined_at or source.called_at, layer=source.name,
            called_at=source.called_at, hint="bias=False")


def _softmax_output(ctx: Context) -> Iterator[Finding]:
    """SHP104: the last leaf op produced the output and it is a softmax."""
    last = next((l for l in reversed(ctx.layers) if l.is_leaf and not l.failed), None)
    if last is None or last.name.rpartition(".")[2] not in _SOFTMAX and last.type not in _SOFTMAX:
        return
    if not ctx.outputs or last.output_shapes[:1] != ctx.outputs[:1]:
        return
    log = "log" in last.name.lower() or "Log" in last.type
    advice = ("log-softmax is right only with nn.NLLLoss; with nn.CrossEntropyLoss return the logits"
              if log else "nn.CrossEntropyLoss applies log-softmax itself, so this is a double softmax; "
              "return the logits and apply softmax only for predictions")
    yield r.SOFTMAX_OUTPUT.finding(f"{last.name}: the model ends in {last.type}; {advice}",
                                   last.called_at or last.defined_at, layer=last.name)


def _flattened_linears(ctx: Context) -> Iterator[Finding]:
    """SHP105 and SHP106: a Linear that reads a flattened spatial map."""
    total = sum(m.numel for m in ctx.submodules if m.name == "")
    failed = {layer.name for layer in ctx.layers if layer.failed}
    for layer in ctx.layers:
        flattened = ctx.flattened(layer) if layer.attr("in_features") is not None else None
        source, shape = flattened if flattened is not None else (None, ())
        if source is None or len(shape) < 3 or all(d == 1 for d in shape[2:]) \
                or source.type.startswith("Adaptive") or layer.name in failed or layer.params == 0 \
                or layer.input_shapes[0][:1] != (ctx.batch,):  # a folded batch is SHP004's finding
            continue
        if total and layer.params >= DOMINANT_SHARE * total:
            yield _dominant(ctx, layer, shape, total)
        yield from _fixed_size(ctx, layer, shape)


def _dominant(ctx: Context, layer: Layer, shape: tuple[int, ...], total: int) -> Finding:
    return r.DOMINANT_LINEAR.finding(
        f"{layer.name}: Linear holds {layer.params:,} of {total:,} parameters "
        f"({layer.params / total:.0%}) because it reads the flattened {factors(shape)} map; "
        f"{_adaptive(shape)}(1) before it would need {shape[1] * layer.attr('out_features', 1):,} weights",
        layer.defined_at or layer.called_at, layer=layer.name, called_at=layer.called_at)


def _fixed_size(ctx: Context, layer: Layer, shape: tuple[int, ...]) -> Iterator[Finding]:
    size, solver = ctx.square, ctx.solver_for(r.FIXED_INPUT_SIZE.code)
    if solver is None or size is None:
        return
    fits = solver.fits(layer.name, layer.attr("in_features"), size) or (size,)
    written = layer.written_as("in_features") or str(layer.attr("in_features"))
    yield r.FIXED_INPUT_SIZE.finding(
        f"{layer.name}: in_features={written} counts the pixels of the {factors(shape)} map, so the model "
        f"only accepts {_span(ctx, fits)}; "
        f"{_adaptive(shape)} or nn.LazyLinear would free the input size",
        layer.defined_at or layer.called_at, layer=layer.name, called_at=layer.called_at)


def _adaptive(shape: tuple[int, ...]) -> str:
    """The adaptive pool of the map's own dimension: a [B, C, D, H, W] map wants the 3d one."""
    rank = min(max(len(shape) - 2, 1), 3)
    return f"nn.AdaptiveAvgPool{rank}d"


def _span(ctx: Context, fits: tuple[int, ...]) -> str:
    if len(fits) == 1:
        return f"the input {ctx.sized(fits[0])}"
    return f"inputs {ctx.sized(fits[0])} to {ctx.sized(fits[-1])} (sizes {ranges(fits)})"
