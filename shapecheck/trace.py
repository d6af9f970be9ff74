"""Run a model's forward on meta tensors and record one row per module call and per op.

The trace never touches the user's weights: ``functional_call`` swaps in meta stand-ins
for the duration of the call. ``nn.Module.__call__`` is routed to the tracer for that
duration and that context only (shapecheck.patches), because forward hooks cannot catch a
failing layer and substitute its output.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from torch import nn

from shapecheck import functional, lazy, memo, patches, recovery, sources, torchapi, usercode
from shapecheck.freeze import Row, freeze, output_names, touched_names
from shapecheck.interception import FlopMode, FunctionMode
from shapecheck.memo import Memo
from shapecheck.modelstate import Mode, Walk, call_with, in_mode, make_arguments, stand_ins, walk
from shapecheck.naming import args_text, module_attrs, op_names
from shapecheck.report import Layer, Location, Shape
from shapecheck.spec import InputSpec


class NeedsValues(Exception):
    """The model reads tensor values (``.item()``, ``if x.sum() > 0``): meta cannot serve."""


class _Abort(Exception):
    """A failure was recorded and no correctly shaped substitute exists: stop the forward."""


@dataclass(frozen=True)
class Failure:
    """A layer or op that raised during the trace, before any interpretation."""

    index: int | None
    kind: Literal["shape", "code"]
    exception: str
    message: str
    location: Location | None
    expected: Shape | None  # the first input's shape as the layer declared it, when it recovered
    recovered: bool
    how: str = "declared"  # "channels_last": the raw input was read as [B, H, W, C]


@dataclass(frozen=True)
class TraceResult:
    layers: tuple[Layer, ...]
    failures: tuple[Failure, ...]
    outputs: tuple[Shape, ...]
    device: Literal["meta", "cpu"]
    # Parameters and buffers the user's forward handed to an op directly (F.linear(x, self.w)).
    touched: frozenset[str] = frozenset()
    # Submodules the forward read as attributes without calling them (self.drop.p).
    fetched: frozenset[str] = frozenset()
    output_names: tuple[str, ...] = ()  # each output's key path, when the output holds a dict


@dataclass
class Tracer:
    names: dict[int, str]
    params: dict[int, int]  # each module's parameter count, its submodules' included
    memo: Memo | None = None  # only on meta: real values may decide a CPU trace's outputs
    rows: list[Row] = field(default_factory=list)
    stack: list[int] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    producers: dict[int, int] = field(default_factory=dict)
    alive: list[torch.Tensor] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    touched: set[int] = field(default_factory=set)
    fetched: set[int] = field(default_factory=set)  # submodules read as attributes
    weights: dict[int, str] = field(default_factory=dict)  # each stand-in's first qualified name
    suspended: bool = False

    # -- rows ---------------------------------------------------------------------------
    def open(self, row: Row) -> int:
        self.rows.append(row)
        self.stack.append(len(self.rows) - 1)
        return len(self.rows) - 1

    def close(self, index: int, out: Any, failed: bool = False) -> None:
        self.stack.pop()
        row = self.rows[index]
        outs = _tensors(out)
        row.output_shapes = tuple(tuple(t.shape) for t in outs)
        row.output_bytes = sum(t.nbytes for t in outs)
        row.is_leaf = index == len(self.rows) - 1
        row.failed = row.failed or failed
        for t in outs:
            # A container's output keeps the innermost producer, the layer a user would name.
            if self.producers.get(id(t), -1) < index:
                self.producers[id(t)] = index
                self.alive.append(t)

    def alias(self, copy: torch.Tensor, source: torch.Tensor) -> None:
        """``copy`` is ``source`` again (a contiguous or cast copy): the same row made it."""
        index = self.producers.get(id(source))
        if index is not None:
            self.producers[id(copy)] = index
            self.alive.append(copy)  # its id must not be reused while the map holds it

    def fetch(self, module: nn.Module) -> None:
        """A submodule read as an attribute inside the forward (not by functional_call's setup)."""
        if self.stack:
            self.fetched.add(id(module))

    def sources_of(self, tensors: list[torch.Tensor]) -> tuple[int | None, ...]:
        return tuple(self.producers.get(id(t)) for t in tensors)

    def parent(self) -> str:
        return self.rows[self.stack[-1]].name if self.stack else ""

    # -- module calls -------------------------------------------------------------------
    def module_call(self, call: Any, module: nn.Module, args: tuple, kwargs: dict) -> Any:
        if torchapi.is_compiled(module):  # a torch.compile'd submodule: what it wraps runs eagerly
            return torchapi.uncompiled(module)(*args, **kwargs)
        name = self.names.get(id(module))
        if name is None or self.suspended:
            return call(module, *args, **kwargs)
        frame = sources.user_frame(sys._getframe(2))
        with torchapi.no_torch_function():  # our own reads of .shape are not the model's ops
            tensors = _arg_tensors(args, kwargs)
            index = self.open(self._module_row(module, name, tensors, frame))
        try:
            out = self._leaf(index, call, module, args, kwargs, tensors) if _opaque(module) \
                else call(module, *args, **kwargs)
        except (_Abort, NeedsValues):
            self.close(index, None, failed=True)
            raise
        except Exception as exc:
            raise_if_needs_values(exc)
            out = self._recover_module(index, call, module, args, kwargs, exc)
        except BaseException as exc:  # sys.exit() in the forward: a finding, never the end of the check
            if usercode.escapes(exc):
                raise
            self._fail(index, "code", exc, sources.traceback_location(exc), None, recovered=False)
            raise _Abort from exc
        with torchapi.no_torch_function():
            self.close(index, out)
        return out

    def _leaf(self, index: int, call: Any, module: nn.Module, args: tuple, kwargs: dict,
              inputs: list[torch.Tensor]) -> Any:
        """Run a plain torch.nn leaf, or replay its outputs and FLOPs from an identical call."""
        with torchapi.no_torch_function():
            key = self.memo.module_key(module, args, kwargs) if self.memo is not None else None
            return self._memoized(index, key, inputs, lambda: call(module, *args, **kwargs))

    def _memoized(self, index: int, key: tuple | None, inputs: list[torch.Tensor], run: Any) -> Any:
        """Replay the outputs and FLOPs recorded under ``key``, or run and record them.

        A call that opened rows of its own is not recorded: a replay could not open them.
        """
        with torchapi.no_torch_dispatch():  # the replay's own empty_strided is not the model's
            hit = self.memo.replay(key, inputs) if key is not None else None  # type: ignore[union-attr]
        if hit is not None:
            self.add_flops(hit[1])
            return hit[0]
        row = self.rows[index]
        before = row.flops
        out = run()
        if key is not None and index == len(self.rows) - 1:
            self.memo.store(key, out, row.flops - before, inputs)  # type: ignore[union-attr]
        return out

    def add_flops(self, flops: int) -> None:
        if flops and not self.suspended:
            for index in self.stack:
                self.rows[index].flops += flops

    def _module_row(self, module: nn.Module, name: str, tensors: list[torch.Tensor], frame: Any) -> Row:
        first = id(module) not in self.seen
        self.seen.add(id(module))
        return Row(
            name=name or type(module).__name__, type=type(module).__name__, kind="module",
            depth=len(self.stack), parent=self.parent(),
            input_shapes=tuple(tuple(t.shape) for t in tensors),
            input_sources=self.sources_of(tensors),
            called_at=sources.frame_location(frame) if frame is not None else None,
            module=module, attrs=module_attrs(module),
            params=self.params.get(id(module), 0) if first else 0,
        )

    def _recover_module(self, index: int, call: Any, module: nn.Module, args: tuple,
                        kwargs: dict, exc: Exception) -> Any:
        if sources.raised_by_user(exc):
            self._fail(index, "code", exc, sources.traceback_location(exc), None, recovered=False)
            raise _Abort from exc
        with torchapi.no_torch_function():
            first = args[0] if args and isinstance(args[0], torch.Tensor) else None
            from_input = first is not None and self.producers.get(id(first)) is None
            repair = recovery.for_module(module, args, kwargs, from_input)
        return self._stand_in(index, repair, exc, lambda a, k: call(module, *a, **k))

    def _stand_in(self, index: int, repair: recovery.Repair | None, exc: Exception, run: Any) -> Any:
        """Record the failure and return what the layer would have produced, or stop the trace."""
        if repair is None:
            self._fail(index, "shape", exc, None, None, recovered=False)
            raise _Abort from exc
        if isinstance(repair, recovery.Same):
            self._fail(index, "shape", exc, None, tuple(repair.like.shape), recovered=True)
            with torchapi.no_torch_function():
                return torch.empty_like(repair.like)
        self._fail(index, "shape", exc, None, repair.expected, recovered=True, how=repair.how)
        self.suspended = True
        try:
            out = run(repair.args, repair.kwargs)
            with torchapi.no_torch_function():
                return repair.finish(out)
        except Exception:
            self.failures[-1] = replace(self.failures[-1], recovered=False)
            raise _Abort from exc
        finally:
            self.suspended = False

    def _fail(self, index: int | None, kind: Literal["shape", "code"], exc: BaseException,
              location: Location | None, expected: Shape | None, recovered: bool,
              how: str = "declared") -> None:
        if index is not None:
            self.rows[index].failed = True
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        name, exited = type(exc).__name__, usercode.exit_call(exc)
        if exited:
            name, message = "SystemExit", f"the forward called {exited}, which would end the process"
        if isinstance(exc, usercode.TimedOut):
            message = (f"the analysis passed its --timeout of {exc.seconds:g} s here: the forward runs too long "
                       "(an endless loop, or a model too slow to trace); raise --timeout if it is only slow")
        self.failures.append(Failure(index, kind, name, message, location,
                                     expected, recovered, how))

    # -- functional ops -----------------------------------------------------------------
    def function_call(self, func: Any, args: tuple, kwargs: dict, frame: Any) -> Any:
        tensors = _arg_tensors(args, kwargs)
        name, kind = op_names(func)
        index = self.open(Row(
            name=name, type=kind, kind="function", depth=len(self.stack), parent=self.parent(),
            input_shapes=tuple(tuple(t.shape) for t in tensors),
            input_sources=self.sources_of(tensors),
            input_weights=tuple(self.weights.get(id(t)) for t in tensors),
            attrs=functional.attrs(name, args, kwargs),
            called_at=sources.frame_location(frame), args=args_text(args, kwargs),
        ))
        try:
            key = self.memo.call_key(func, args, kwargs) if self.memo is not None else None
            out = self._memoized(index, key, tensors, lambda: func(*args, **kwargs))
        except (_Abort, NeedsValues):
            self.close(index, None, failed=True)
            raise
        except Exception as exc:
            raise_if_needs_values(exc)
            out = self._recover_function(index, func, name, args, kwargs, exc)
        if index == len(self.rows) - 1 and not _tensors(out):
            self.rows.pop()
            self.stack.pop()
            return out
        self.close(index, out)
        return out

    def _recover_function(self, index: int, func: Any, name: str, args: tuple, kwargs: dict,
                          exc: Exception) -> Any:
        """Every exception here was raised by the torch op itself: a shape error of the model."""
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if x is not None and name in ("view", "reshape") and x.dim() >= 1 and len(_shape_arg(args[1:])) == 2:
            # The author meant "one row per sample": continue with the batch-preserving flatten.
            self._fail(index, "shape", exc, None, None, recovered=True)
            with torchapi.no_torch_function():
                return torch.empty((x.shape[0], x[0].numel()), dtype=x.dtype, device=x.device)
        with torchapi.no_torch_function():
            repair = recovery.for_function(name, args, kwargs)
        return self._stand_in(index, repair, exc, lambda a, k: func(*a, **k))


def trace(model: nn.Module, inputs: Sequence[InputSpec], batch: int, mode: Mode = "eval",
          walked: Walk | None = None, origin: Location | None = None, keep: bool = False,
          max_cpu_memory: int | None = None) -> TraceResult:
    """Trace on the meta device; fall back to CPU when the forward reads tensor values, if
    the weights fit in the memory free (and in ``max_cpu_memory`` bytes): otherwise the
    result is one failure saying so, and nothing is allocated.
    ``walked`` is ``walk(model)``, when already at hand; ``origin`` is where a container
    model was created (a factory's ``return nn.Sequential(...)``), to locate its items.
    The model is put back as it was after the trace, unless ``keep``: only for shapecheck's
    own copy, a lazy twin whose sizes the trace is there to infer."""
    walked = walk(model) if walked is None else walked
    try:
        return _run(model, inputs, batch, mode, "meta", walked, origin, keep)
    except NeedsValues:
        pass
    refused = _cpu_refusal(walked, max_cpu_memory)
    if refused is not None:
        return TraceResult((), (Failure(None, "code", "MemoryError", refused, None, None, False),), (), "meta")
    try:
        return _run(model, inputs, batch, mode, "cpu", walked, origin, keep)
    except NeedsValues as exc:  # a private signal: never the API's exception
        raise RuntimeError(f"the forward needs real values, and its run on CPU failed too: {exc}") from exc


def _run(model: nn.Module, inputs: Sequence[InputSpec], batch: int, mode: Mode,
         device: Literal["meta", "cpu"], walked: Walk, origin: Location | None, keep: bool) -> TraceResult:
    tree = walked.tree
    names: dict[int, str] = {}  # as rows show them
    real: dict[int, str] = {}  # as the rules know them
    for name, module in tree:
        real.setdefault(id(module), name)
        names.setdefault(id(module), torchapi.shown_name(name))
    tracer = Tracer(names, walked.params, memo.shared() if device == "meta" else None)
    weights = stand_ins(model, device, tree)
    for name, tensor in weights.items():
        tracer.weights.setdefault(id(tensor), name)
    xs, named = make_arguments(inputs, batch, device)
    out = None
    try:
        # tracer.module_call sees this context's module calls; other threads see torch's own.
        with patches.recursion_room(), \
                patches.module_calls(tracer.module_call), patches.module_fetches(tracer.fetch), \
                in_mode(model, mode, tree, preserve=not keep), torch.no_grad(), \
                FunctionMode(tracer, device), FlopMode(tracer):
            out = call_with(model, weights, tree, xs, named)
    except _Abort:
        out = None
    while tracer.stack:  # rows left open by an aborted forward
        tracer.close(tracer.stack[-1], None, failed=True)
    modules = {torchapi.shown_name(name): m for name, m in tree if not torchapi.is_compiled(m)}
    layers = tuple(freeze(i, row, model, modules, origin) for i, row in enumerate(tracer.rows))
    outputs = tuple(tuple(t.shape) for t in _tensors(out))
    fetched = frozenset(real[key] for key in tracer.fetched if key in real)
    return TraceResult(layers, tuple(tracer.failures), outputs, device, touched_names(weights, tracer.touched), fetched,
                       output_names(out))


def _cpu_refusal(walked: Walk, limit: int | None) -> str | None:
    """Why the CPU run must not start, or None: its weights (every parameter and buffer,
    copied or drawn for the run) would not fit in 80% of the memory free, or in ``limit``."""
    tensors = {id(t): t for _, m in walked.tree for t in (*m._parameters.values(), *m._buffers.values())
               if t is not None}
    need = sum(lazy.numel(t) * t.element_size() for t in tensors.values())
    free = _memory_free()
    caps = [(limit, "--max-cpu-memory")] if limit is not None else []
    caps += [(int(free * 0.8), "80% of the memory free")] if free is not None else []
    cap, what = min(caps, default=(None, ""), key=lambda c: c[0])
    if cap is None or need <= cap:
        return None
    return (f"the forward reads tensor values, so it would run on CPU with {need / 2**30:.1f} GiB of weights, "
            f"more than {what} ({cap / 2**30:.1f} GiB); nothing was allocated: check it on a machine "
            "with more memory, raise --max-cpu-memory, or keep value reads (.item(), if on a tensor) out of forward")


def _memory_free() -> int | None:
    """Bytes of memory available to a new allocation (Linux's MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _opaque(module: nn.Module) -> bool:
    """A torch.nn layer with no submodules and no hooks runs only torch's own code.

    Nothing inside it becomes a row (its ops have no user frame) and it creates no tensor
    without a device, so the function mode can stand aside for it: the dispatch mode below
    still counts its FLOPs. Hooks are the user's code, so a hooked layer is traced as usual.
    """
    cls = type(module)
    if cls not in _TORCH_NN:
        _TORCH_NN[cls] = cls.__module__.startswith("torch.nn.modules.")
    return _TORCH_NN[cls] and not module._modules and not module._forward_hooks \
        and not module._forward_pre_hooks and not torchapi.global_module_hooks()


_TORCH_NN: dict[type, bool] = {}


def _shape_arg(rest: tuple) -> tuple:
    return tuple(rest[0]) if len(rest) == 1 and isinstance(rest[0], list | tuple | torch.Size) else rest


def _tensors(obj: Any) -> list[torch.Tensor]:
    """The tensors in an op's arguments or outputs, through nested lists, tuples and dicts."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    found: list[torch.Tensor] = []
    _collect(obj, found, 0)
    return found


def _arg_tensors(args: tuple, kwargs: dict) -> list[torch.Tensor]:
    """``_tensors((args, kwargs))``, without the walk for the commonest call: one tensor."""
    if len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor):
        return [args[0]]
    return _tensors((args, kwargs))


def _collect(obj: Any, found: list[torch.Tensor], depth: int) -> None:
    items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list | tuple) else ()
    for item in items:
        if isinstance(item, torch.Tensor):
            found.append(item)
        elif depth < 3 and isinstance(item, list | tuple | dict):
            _collect(item, found, depth + 1)


def raise_if_needs_values(exc: Exception) -> None:
    if torchapi.reads_values(exc):
        raise NeedsValues(str(exc)) from exc
