"""The public entry point: model and input spec in, Report out."""
from __future__ import annotations

import inspect
from dataclasses import replace
import os
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from shapecheck import lazy, noqa, sources, torchapi
from shapecheck.errors import UsageError
from shapecheck.grouping import folded, grouped
from shapecheck.report import Finding, Layer, Location, Report, Shape, Totals
from shapecheck.rules import batch as batch_rule
from shapecheck.checkpoint import shapes as saved_shapes
from shapecheck.patches import collector_paused, torch_environment_kept
from shapecheck.preserve import keeps_model
from shapecheck.rules import budget, crash, design, pixels, registry
from shapecheck.rules import checkpoint as checkpoint_rule
from shapecheck.rules.context import Context, Submodule
from shapecheck.sizes import Solver
from shapecheck.spec import (Example, InputSpec, batch_dim_of, parse_bytes, parse_count, parse_dtype, parse_inputs,
                             read_inputs)
from shapecheck.modelstate import Mode, Tree, Walk, walk
from shapecheck.trace import TraceResult, trace


@collector_paused()
@torch_environment_kept()
@sources.cwd_fixed()
@keeps_model
def analyze(
    model: nn.Module,
    input: Example,  # noqa: A002 - the issue's own API name
    *,
    batch: int | None = None,
    batch_dim: int | None = None,
    dtype: str | torch.dtype | None = None,
    output: Shape | int | str | None = None,
    mode: Mode = "eval",
    select: Iterable[str] = (),
    ignore: Iterable[str] = (),
    name: str | None = None,
    path: str | None = None,
    max_params: int | str | None = None,
    max_macs: int | str | None = None,
    max_activation_memory: int | str | None = None,
    checkpoint: str | os.PathLike | Mapping[str, Any] | None = None,
    origin: Location | None = None,
    max_cpu_memory: int | str | None = None,
) -> Report:
    """Trace ``model`` on the meta device for ``input`` and return its Report.

    ``input`` is one sample's shape without the batch (``"3x64x64"``), or a list of them for
    models with several inputs, or a dict of them for keyword arguments. Real example
    tensors serve too, nested in lists, tuples and dicts as ``forward`` takes them: only their
    shapes and dtypes are used: they are traced at exactly their shapes, and the tensors at the
    top level give the batch (otherwise ``batch``, 2 by default). ``batch_dim`` says where the
    batch sits (0; 1 for a sequence-first model's ``[T, B, ...]``); example tensors that share
    no first dimension but share the second are read as sequence-first. A list spec (``"[3x320x320, 3x480x640]"``) is one ``list[Tensor]``
    argument, one tensor per sample, as detection models take their images. The model object is never modified: its weights are swapped
    for meta stand-ins only inside the trace. Budgets take numbers or text (``"25M"``,
    ``"512MB"``); ``max_macs`` is per sample. ``checkpoint`` (a path, loaded with
    ``weights_only=True``, or a state_dict) is reconciled with the model's tensors.
    ``origin`` is where a container model was created (``sources.factory_site(make_model)``),
    so that findings on its items point at the lines that create them. A forward that reads
    tensor values runs on CPU only if its weights fit in 80% of the memory free and in
    ``max_cpu_memory`` (bytes, or text such as ``"8GiB"``); otherwise an SHP008 finding says so.
    """
    chosen = parse_dtype(dtype) if isinstance(dtype, str) else dtype
    if batch_dim is not None and batch_dim < 0:
        raise ValueError(f"batch_dim must be 0 or more, not {batch_dim}")
    read = read_inputs(input, chosen, batch_dim)
    inputs, batch = read.specs, _batch(batch, read.batch)
    model = torchapi.uncompiled(model)
    _check_arity(model, inputs)
    model = lazy.initialized(model, inputs, batch, mode)  # the user's lazy modules stay uninitialised
    walked = walk(model)
    cpu_cap = parse_bytes(max_cpu_memory, "max_cpu_memory") if max_cpu_memory is not None else None
    result = trace(model, inputs, batch, mode, walked, origin, max_cpu_memory=cpu_cap)
    select, ignore = registry.known(tuple(select), "select"), registry.known(tuple(ignore), "ignore")
    wants_fold = registry.selected(registry.BATCH_FOLDED.code, select, ignore)
    dim = batch_dim_of(inputs)
    second = trace(model, inputs, batch + 1, mode, walked, origin, max_cpu_memory=cpu_cap) \
        if dim is not None and wants_fold \
        and batch_rule.needs_second_trace(result.layers, batch, result.outputs, dim) else None
    ctx = Context(result.layers, result.failures, inputs, batch, result.outputs, _shape(output),
                  batch_dim=dim,
                  second=second, submodules=_submodules(walked), touched=result.touched, fetched=result.fetched,
                  output_names=result.output_names,
                  select=select, ignore=ignore,
                  solver=_solver(model, inputs, mode, result, batch), locate=partial(_locate, model, origin))
    totals = _totals(walked.tree, result)
    limits = budget.Budgets(
        parse_count(max_params, "max_params") if max_params is not None else None,
        parse_count(max_macs, "max_macs") if max_macs is not None else None,
        parse_bytes(max_activation_memory, "max_activation_memory") if max_activation_memory is not None else None)
    where = result.layers[0].defined_at if result.layers else None
    found = [*_findings(ctx), *budget.check(ctx, totals, limits, where)]
    if checkpoint is not None:
        mine = {key: tuple(t.shape) for key, t in model.state_dict(keep_vars=True).items()}
        found += checkpoint_rule.check(ctx, mine, saved_shapes(checkpoint))
    kept = noqa.keep(f for f in found if registry.selected(f.code, select, ignore))
    # Locations outside the user's files go first: findings that had one in torch's code
    # must not be folded as "layers made at this line" of a line the user cannot see.
    findings = _with_helper_calls(grouped(_in_user_files(tuple(kept))), result.layers)
    return Report(
        model=name or type(model).__name__, inputs=inputs, batch=batch, device=result.device,
        layers=result.layers, totals=totals, outputs=result.outputs,
        findings=findings, path=path,
        notes=(*((read.note,) if read.note else ()), *_notes(result, totals)), output_names=result.output_names,
    )


def _batch(given: int | None, from_tensors: int | None) -> int:
    """The batch: the example tensors' own, else the one asked for, else 2."""
    if given is not None and given < 1:
        raise ValueError(f"batch must be at least 1, not {given}")
    if given is not None and from_tensors is not None and given != from_tensors:
        raise ValueError(f"batch={given}, but the example tensors have a batch of {from_tensors}: "
                         "pass one or the other")
    return given or from_tensors or 2


def _solver(model: nn.Module, inputs: tuple[InputSpec, ...], mode: Mode, result: TraceResult,
            batch: int) -> Solver | None:
    """The sizes solver varies the first input's spatial sizes: a plain tensor's, batch first. Its
    algebra reads this analysis' trace, so the rules' size questions cost no trace."""
    first = inputs[0] if inputs else None
    return Solver(model, inputs, mode=mode, traced=result, batch=batch) \
        if first is not None and first.container == "tensor" and not first.exact and first.shape \
        and first.batch_dim == 0 else None


def _in_user_files(findings: tuple[Finding, ...]) -> tuple[Finding, ...]:
    """No finding points into torch or another installed package (an op inside torchvision's
    detector): such a location helps no one edit their model, and is dropped."""
    return tuple(replace(f, location=None, called_at=None, fix=None)
                 if f.location is not None and not sources.is_user_file(os.path.abspath(f.location.path)) else f
                 for f in findings)


def _with_helper_calls(findings: Iterable[Finding], layers: tuple[Layer, ...]) -> tuple[Finding, ...]:
    """A finding inside a helper function also names the model's line that called the helper
    (one for a single layer; a folded finding already lists its layers)."""
    made = {layer.name: layer.made_by for layer in layers if layer.made_by is not None}
    return tuple(replace(f, message=f"{f.message} (made by the call at line {made[f.layer].line})")
                 if f.layer in made and f.location is not None and f.location.line != made[f.layer].line
                 and not folded(f) else f for f in findings)


def _check_arity(model: nn.Module, inputs: Sequence[InputSpec]) -> None:
    """Fewer inputs than ``forward`` requires is the invocation's mistake, not the model's;
    so is a named input that ``forward`` has no parameter for."""
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return
    parameters = signature.parameters
    names = {spec.name for spec in inputs if spec.name is not None}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    unknown = sorted(n for n in names if n not in parameters and not takes_any)
    if unknown:
        raise UsageError(f"{type(model).__name__}.forward{signature} has no parameter {', '.join(unknown)}; "
                         f"name the inputs after its parameters")
    given = sum(1 for spec in inputs if spec.name is None)
    required = [p.name for p in parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                and p.default is p.empty and p.name not in names]
    if given < len(required):
        example = " ".join(f"--input SHAPE_OF_{name.upper()}" for name in required)
        raise UsageError(f"{type(model).__name__}.forward{signature} takes {len(required)} inputs "
                         f"({', '.join(required)}) but {given} {'was' if given == 1 else 'were'} given; "
                         f"pass one --input per argument, in order: {example}")


def _notes(result: TraceResult, totals: Totals) -> tuple[str, ...]:
    from shapecheck.render.numbers import size

    notes = [f"the forward reads tensor values, so it ran on CPU with {size(totals.param_bytes + totals.buffer_bytes)} "
             "of weights for this run only: the model's real ones where it has them, random stand-ins "
             "for those on meta"] if result.device == "cpu" else []
    stop = next((f for f in result.failures if not f.recovered and f.index is not None), None)
    if stop is not None and stop.kind == "shape":
        notes.append(f"the trace stopped at {result.layers[stop.index].name}: no correctly shaped output "
                     "exists for it, so the layers after it are not shown")
    return tuple(notes)


def _findings(ctx: Context) -> list[Finding]:
    found = [*crash.check(ctx), *crash.check_output(ctx), *batch_rule.check(ctx), *pixels.check(ctx),
             *design.check(ctx)]
    return sorted(found, key=lambda f: (f.location.path if f.location else "",
                                        f.location.line if f.location else 0, f.code))


def _submodules(walked: Walk) -> tuple[Submodule, ...]:
    firsts: dict[int, tuple[str, nn.Module]] = {}  # model.named_modules(): each module once
    for name, module in walked.tree:
        if not torchapi.is_compiled(module):  # the wrapper is never called in the trace; what it wraps is
            firsts.setdefault(id(module), (name, module))
    modules = dict(walked.tree)
    return tuple(Submodule(name, type(module).__name__, walked.params[id(module)], _referenced(modules, name))
                 for name, module in firsts.values())


def _referenced(modules: dict[str, nn.Module], name: str) -> bool:
    owner_name, _, attr = name.rpartition(".")
    owner = modules.get(owner_name)
    return bool(name) and owner is not None and attr in sources.referenced_attributes(type(owner))


def _locate(model: nn.Module, origin: Location | None, name: str) -> Location | None:
    return sources.module_definition(model, name, origin=origin)[0]


def _totals(tree: Tree, result: TraceResult) -> Totals:
    # Each tensor once, as parameters() yields them: tied weights are counted once.
    params = list({id(p): p for _, m in tree for p in m._parameters.values() if p is not None}.values())
    buffers = list({id(b): b for _, m in tree for b in m._buffers.values() if b is not None}.values())
    roots = [layer for layer in result.layers if layer.depth == 0]
    return Totals(
        params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        buffers=sum(b.numel() for b in buffers),
        macs=sum(layer.macs for layer in roots),
        param_bytes=sum(p.numel() * p.element_size() for p in params),
        buffer_bytes=sum(b.numel() * b.element_size() for b in buffers),
        activation_bytes=sum(layer.output_bytes for layer in result.layers if _is_activation(layer)),
    )


def _is_activation(layer: Layer) -> bool:
    return layer.is_leaf and not layer.failed


def _shape(output: Shape | int | str | None) -> Shape | None:
    if output is None:
        return None
    if isinstance(output, int):
        return (output,)
    if isinstance(output, str):
        return parse_inputs(output)[0].shape
    return tuple(output)
