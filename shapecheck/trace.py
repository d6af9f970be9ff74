"""Run a model's forward on meta tensors and record one row per module call and per op.

The trace never touches the user's weights: ``functional_call`` swaps in meta stand-ins
for the duration of the call. ``nn.Module.__call__`` is routed to the tracer for that
duration and that context only (shapecheck.patches), because forward hooks cannot catch a
failing layer and substitute its output.
"""
from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.parameter import UninitializedTensorMixin
from torch.overrides import TorchFunctionMode, resolve_name

from shapecheck import fastmeta, lazy, memo, patches, recovery, sources, torchapi
from shapecheck.memo import Memo
from shapecheck.report import Layer, Location, Shape
from shapecheck.spec import InputSpec

Mode = Literal["eval", "train", "same"]

# Metadata reads and casts: recording them would bury the table in noise.
_IGNORED = frozenset({
    torch.Tensor.size, torch.Tensor.dim, torch.Tensor.numel, torch.Tensor.__len__,
    torch.Tensor.is_contiguous, torch.Tensor.stride, torch.Tensor.element_size,
    torch.Tensor.to, torch.Tensor.type, torch.Tensor.float, torch.Tensor.half,
    torch.Tensor.double, torch.Tensor.contiguous, torch.Tensor.detach, torch.Tensor.clone,
    torch.Tensor.requires_grad_, torch.Tensor.cpu, torch.Tensor.cuda, torch.Tensor.__format__,
    torch.Tensor.__repr__, torch.Tensor.__bool__, torch.Tensor.item, torch.Tensor.tolist,
    torch.Tensor.__hash__, torch.Tensor.__eq__, torch.Tensor.data_ptr, torch.Tensor.untyped_storage,
    torch.Tensor.get_device, torch.Tensor.storage_offset,
})
# The factories that `with torch.device(...)` redirects.
_CONSTRUCTORS = torchapi.device_constructors()
_OPERATORS = {
    "add": "+", "radd": "+", "iadd": "+=", "sub": "-", "rsub": "-", "isub": "-=",
    "mul": "*", "rmul": "*", "imul": "*=", "truediv": "/", "rtruediv": "/", "itruediv": "/=",
    "matmul": "@", "rmatmul": "@", "getitem": "[]", "pow": "**", "neg": "-x",
}
_ATTR_TYPES = (int, float, bool, str, tuple)
_RECORDED_ATTRS = ("in_features", "out_features", "in_channels", "out_channels", "kernel_size",
                   "stride", "padding", "dilation", "groups", "num_features", "ceil_mode",
                   "output_size", "num_embeddings", "embedding_dim", "normalized_shape", "dim",
                   "input_size", "hidden_size", "batch_first", "embed_dim", "kdim", "vdim",
                   "num_heads", "num_channels", "output_padding", "scale_factor", "size", "mode")


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
class _Row:
    name: str
    type: str
    kind: Literal["module", "function"]
    depth: int
    parent: str
    input_shapes: tuple[Shape, ...]
    input_sources: tuple[int | None, ...]
    called_at: Location | None
    module: nn.Module | None = None
    args: str = ""
    attrs: tuple[tuple[str, Any], ...] = ()
    params: int = 0
    flops: int = 0
    output_shapes: tuple[Shape, ...] = ()
    output_bytes: int = 0
    is_leaf: bool = True
    failed: bool = False


@dataclass
class _Tracer:
    names: dict[int, str]
    params: dict[int, int]  # each module's parameter count, its submodules' included
    memo: Memo | None = None  # only on meta: real values may decide a CPU trace's outputs
    rows: list[_Row] = field(default_factory=list)
    stack: list[int] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    producers: dict[int, int] = field(default_factory=dict)
    alive: list[torch.Tensor] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    touched: set[int] = field(default_factory=set)
    fetched: set[int] = field(default_factory=set)  # submodules read as attributes
    suspended: bool = False

    # -- rows ---------------------------------------------------------------------------
    def open(self, row: _Row) -> int:
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

    def _module_row(self, module: nn.Module, name: str, tensors: list[torch.Tensor], frame: Any) -> _Row:
        first = id(module) not in self.seen
        self.seen.add(id(module))
        return _Row(
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

    def _fail(self, index: int | None, kind: Literal["shape", "code"], exc: Exception,
              location: Location | None, expected: Shape | None, recovered: bool,
              how: str = "declared") -> None:
        if index is not None:
            self.rows[index].failed = True
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        self.failures.append(Failure(index, kind, type(exc).__name__, message, location,
                                     expected, recovered, how))

    # -- functional ops -----------------------------------------------------------------
    def function_call(self, func: Any, args: tuple, kwargs: dict, frame: Any) -> Any:
        tensors = _arg_tensors(args, kwargs)
        name, kind = _op_names(func)
        index = self.open(_Row(
            name=name, type=kind, kind="function", depth=len(self.stack), parent=self.parent(),
            input_shapes=tuple(tuple(t.shape) for t in tensors),
            input_sources=self.sources_of(tensors),
            called_at=sources.frame_location(frame), args=_args_text(args, kwargs),
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


class _FunctionMode(TorchFunctionMode):
    """Records functional ops, and puts tensors the forward creates on the trace's device.

    The device is this mode's job rather than ``with torch.device(...)``'s, because that
    context is a second Python mode in the path of every torch call: 5% of a trace.
    """

    def __init__(self, tracer: _Tracer, device: str) -> None:
        super().__init__()
        self.tracer, self.device = tracer, torch.device(device)

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _CONSTRUCTORS and kwargs.get("device") is None:
            kwargs["device"] = self.device
        if self.tracer.suspended or func in _IGNORED or getattr(func, "__name__", "") == "__get__":
            return func(*args, **kwargs)
        # Every call, torch's own included: MultiheadAttention reads out_proj.weight without calling it.
        self.tracer.touched.update(id(a) for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor))
        frame = sources.user_frame(sys._getframe(1))
        if frame is None:
            return func(*args, **kwargs)
        return self.tracer.function_call(func, args, kwargs, frame)


class _FlopMode(torchapi.DispatchMode):
    """Attribute FLOPs to every open row, with torch.utils.flop_counter's own formulas, and
    replay the meta kernels of ops already seen with the same input metadata."""

    def __init__(self, tracer: _Tracer) -> None:
        super().__init__()
        self.tracer, self.memo = tracer, tracer.memo

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        key = self.memo.key(func, args, kwargs) if self.memo is not None else None
        hit = self.memo.replay(key) if key is not None else None  # type: ignore[union-attr]
        if hit is not None:
            out, flops = hit
        else:
            fast = fastmeta.outputs(func, args, kwargs)
            out = fast if fast is not None else func(*args, **kwargs)
            flops = torchapi.flops(func, args, kwargs, out)
            if key is not None:
                self.memo.store(key, out, flops)  # type: ignore[union-attr]
        self.tracer.add_flops(flops)
        return out


Tree = list[tuple[str, nn.Module]]


def module_tree(model: nn.Module) -> Tree:
    """``list(model.named_modules(remove_duplicate=False))``, without its nested generators:
    those hand every module up through one generator per level, a cost that grows with depth."""
    tree: Tree = []
    stack = [("", model)]
    while stack:
        prefix, module = stack.pop()
        tree.append((prefix, module))
        stack.extend(reversed([(f"{prefix}.{key}" if prefix else key, child)
                               for key, child in module._modules.items() if child is not None]))
    return tree


@dataclass(frozen=True)
class Walk:
    """One walk over a model's modules, for everything an analysis asks of them."""

    tree: Tree
    params: dict[int, int]  # param_counts


def walk(model: nn.Module) -> Walk:
    tree = module_tree(model)
    return Walk(tree, param_counts(model, tree))


def trace(model: nn.Module, inputs: Sequence[InputSpec], batch: int, mode: Mode = "eval",
          walked: Walk | None = None, origin: Location | None = None) -> TraceResult:
    """Trace on the meta device; fall back to CPU when the forward reads tensor values.
    ``walked`` is ``walk(model)``, when already at hand; ``origin`` is where a container
    model was created (a factory's ``return nn.Sequential(...)``), to locate its items."""
    walked = walk(model) if walked is None else walked
    try:
        return _run(model, inputs, batch, mode, "meta", walked, origin)
    except NeedsValues:
        pass
    try:
        return _run(model, inputs, batch, mode, "cpu", walked, origin)
    except NeedsValues as exc:  # a private signal: never the API's exception
        raise RuntimeError(f"the forward needs real values, and its run on CPU failed too: {exc}") from exc


def _run(model: nn.Module, inputs: Sequence[InputSpec], batch: int, mode: Mode,
         device: Literal["meta", "cpu"], walked: Walk, origin: Location | None) -> TraceResult:
    tree = walked.tree
    names: dict[int, str] = {}
    for name, module in tree:
        names.setdefault(id(module), name)
    tracer = _Tracer(names, walked.params, memo.shared() if device == "meta" else None)
    weights = stand_ins(model, device, tree)
    own = {id(p) for _, m in tree for p in m._parameters.values() if p is not None}
    xs = tuple(make_input(spec, batch, device) for spec in inputs)
    out = None
    try:
        # tracer.module_call sees this context's module calls; other threads see torch's own.
        with patches.module_calls(tracer.module_call), patches.module_fetches(tracer.fetch), \
                in_mode(model, mode, tree), torch.no_grad(), \
                _FunctionMode(tracer, device), _FlopMode(tracer):
            swapped = {k: t for k, t in weights.items() if id(t) not in own}
            out = functional_call(model, swapped, xs, strict=False, tie_weights=False)
    except _Abort:
        out = None
    while tracer.stack:  # rows left open by an aborted forward
        tracer.close(tracer.stack[-1], None, failed=True)
    modules = dict(tree)
    layers = tuple(_freeze(i, row, model, modules, origin) for i, row in enumerate(tracer.rows))
    outputs = tuple(tuple(t.shape) for t in _tensors(out))
    fetched = frozenset(names[key] for key in tracer.fetched if key in names)
    return TraceResult(layers, tuple(tracer.failures), outputs, device, _touched(weights, tracer.touched), fetched,
                       output_names(out))


def output_names(out: Any) -> tuple[str, ...]:
    """The path of each output tensor, in ``_tensors`` order, when the output holds a dict
    (``boxes``, ``0.scores``); empty for tensors, tuples and lists, whose order is their name."""
    named: list[str] = []

    def visit(value: Any, path: str, depth: int) -> None:
        if isinstance(value, torch.Tensor):
            named.append(path)
        elif depth <= 3 and isinstance(value, dict):
            for key, item in value.items():
                visit(item, f"{path}.{key}" if path else str(key), depth + 1)
        elif depth <= 3 and isinstance(value, list | tuple):
            for i, item in enumerate(value):
                visit(item, f"{path}.{i}" if path else str(i), depth + 1)

    visit(out, "", 0)
    has_dict = isinstance(out, dict) or any(isinstance(v, dict) for v in (out if isinstance(out, list | tuple) else ()))
    return tuple(named) if has_dict else ()


def _touched(weights: dict[str, torch.Tensor], ids: set[int]) -> frozenset[str]:
    """The names of the weights the forward handed to an op, a tied weight under its first name only."""
    named: dict[int, str] = {}
    for name, t in weights.items():
        named.setdefault(id(t), name)
    return frozenset(name for key, name in named.items() if key in ids)


@contextmanager
def in_mode(model: nn.Module, mode: Mode, tree: Tree | None = None) -> Iterator[None]:
    """Put the model in ``mode`` for the trace and restore every module's own flag after,
    and every attribute that holds tensors, as the forward found it.

    The flags are written straight into each module's ``__dict__``, as ``nn.Module.train``
    and ``__setattr__`` would leave them, unless a class overrides ``train``: on the
    80 torchvision models, those two methods cost as much as rendering the reports.
    """
    tree = module_tree(model) if tree is None else tree
    modules = list({id(m): m for _, m in tree}.values())
    flags = [m.training for m in modules]
    plain = all(type(m).train is nn.Module.train and "training" in vars(m) for m in modules)
    cached = [_tensor_attributes(m) for m in modules]
    try:
        if mode != "same" and not plain:
            model.train(mode == "train")
        elif mode != "same":
            for m in modules:
                vars(m)["training"] = mode == "train"
        yield
    finally:
        for m, training, kept in zip(modules, flags, cached):
            if plain:
                vars(m)["training"] = training
            else:
                m.training = training
            _restore_tensor_attributes(m, kept)


def _tensor_attributes(module: nn.Module) -> dict[str, Any]:
    """Plain attributes that hold tensors: a forward may cache meta ones there (torchvision's
    AnchorGenerator moves its cell_anchors to the input's device), which must not outlive
    the trace in the user's model."""
    return {k: v for k, v in vars(module).items() if _holds_tensors(v)}


def _holds_tensors(value: Any) -> bool:
    return isinstance(value, torch.Tensor) or (
        type(value) in (list, tuple) and bool(value) and isinstance(value[0], torch.Tensor))


def _restore_tensor_attributes(module: nn.Module, kept: dict[str, Any]) -> None:
    now = vars(module)
    for key in [k for k, v in now.items() if k not in kept and _holds_tensors(v)]:
        del now[key]  # cached by this trace
    for key, value in kept.items():
        if now.get(key) is not value:
            now[key] = value


def param_counts(model: nn.Module, tree: Tree | None = None) -> dict[int, int]:
    """``sum(p.numel() for p in m.parameters())`` for every module ``m``, in one pass.

    Asking each module in turn walks every subtree again, which cost more than the trace
    itself on deep models. A parameter or module shared between places makes a subtree's sum
    differ from its children's, so then each module is asked after all. ``tree`` is
    ``module_tree(model)``, when already at hand.
    """
    tree = module_tree(model) if tree is None else tree
    slots = [p for _, m in tree for p in m._parameters.values() if p is not None]
    if len({id(p) for p in slots}) != len(slots):
        return {id(m): sum(lazy.numel(p) for p in m.parameters()) for m in model.modules()}
    counts: dict[int, int] = {}

    def count(module: nn.Module) -> int:
        if id(module) not in counts:
            own = sum(lazy.numel(p) for p in module._parameters.values() if p is not None)
            counts[id(module)] = own + sum(count(child) for child in module._modules.values()
                                           if child is not None)
        return counts[id(module)]

    count(model)
    return counts


def _freeze(index: int, row: _Row, root: nn.Module, modules: dict[str, nn.Module],
            origin: Location | None) -> Layer:
    defined_at, init_args = None, ()
    if row.kind == "module":
        defined_at, site = sources.module_definition(root, row.name if row.depth else "", modules, origin)
        if site is not None and row.module is not None:
            init_args = _named_init_args(type(row.module), site)
    return Layer(
        index=index, name=row.name, type=row.type, kind=row.kind, depth=row.depth,
        parent=row.parent, input_shapes=row.input_shapes, output_shapes=row.output_shapes,
        input_sources=row.input_sources, params=row.params, macs=row.flops // 2,
        output_bytes=row.output_bytes, is_leaf=row.is_leaf, failed=row.failed, args=row.args,
        attrs=row.attrs + init_args, defined_at=defined_at, called_at=row.called_at,
    )


@lru_cache(maxsize=4096)
def _named_init_args(cls: type, site: sources.Assignment) -> tuple[tuple[str, Any], ...]:
    """The author's own arguments: ``("src:in_features", "20 * 12 * 12")`` and, for --fix, its Argument.

    One tuple per (class, assignment), shared by every row of it: a zoo's rows repeat a few.
    """
    params = _init_parameters(cls)
    if params is None:
        return ()
    named = dict(zip(params, site.args))
    named.update(site.keywords)
    return tuple((f"src:{key}", arg.text) for key, arg in named.items()) + tuple(
        (f"arg:{key}", arg) for key, arg in named.items())


@lru_cache(maxsize=1024)
def _init_parameters(cls: type) -> tuple[str, ...] | None:
    try:
        return tuple(p for p in inspect.signature(cls.__init__).parameters if p != "self")
    except (TypeError, ValueError):
        return None


def stand_ins(model: nn.Module, device: str,
              tree: Tree | None = None) -> dict[str, torch.Tensor]:
    """Tensors that take the place of the model's parameters and buffers in ``functional_call``.

    Every name is listed, and a tied weight's names share one stand-in, so the call needs no
    ``tie_weights`` pass (torch's is quadratic in the number of tensors). A meta parameter
    stands in for itself in a meta trace: it has nothing to protect, and the trace's ops
    never write a parameter (a shared model built on meta needs no swap at all). ``tree`` is
    ``module_tree(model)``, when already at hand.
    """
    tree = module_tree(model) if tree is None else tree
    weights: dict[str, torch.Tensor] = {}
    made: dict[int, torch.Tensor] = {}
    for kind, share in (("_parameters", True), ("_buffers", False)):
        for prefix, module in tree:
            for key, tensor in getattr(module, kind).items():
                if tensor is None or isinstance(tensor, UninitializedTensorMixin):
                    continue  # a lazy module's: it materialises itself, on meta, as the trace reaches it
                if id(tensor) not in made:
                    own = share and device == "meta" and tensor.is_meta
                    made[id(tensor)] = tensor if own else _stand_in(tensor, device, share)
                weights[f"{prefix}.{key}" if prefix else key] = made[id(tensor)]
    return weights


def _stand_in(t: torch.Tensor, device: str, share: bool) -> torch.Tensor:
    if device == "meta":
        return torch.empty(t.shape, dtype=t.dtype, device="meta")
    if t.device.type == "meta":
        if t.is_floating_point():
            return torch.randn(t.shape, dtype=t.dtype)
        return torch.zeros(t.shape, dtype=t.dtype)
    # Real weights serve as they are under no_grad; buffers are cloned because a forward
    # in train mode updates BatchNorm statistics in place.
    real = t.detach().to("cpu")
    return real if share else real.clone()


def make_input(spec: InputSpec, batch: int, device: str) -> torch.Tensor:
    shape = spec.batched(batch)
    if device == "meta":
        return torch.empty(shape, dtype=spec.dtype, device="meta")
    if spec.dtype.is_floating_point:
        return torch.randn(shape, dtype=spec.dtype, generator=torch.Generator().manual_seed(0))
    return torch.zeros(shape, dtype=spec.dtype)


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


def module_attrs(module: nn.Module) -> tuple[tuple[str, Any], ...]:
    if not type(module).__module__.startswith("torch.nn"):
        return ()
    # vars(): a missing name costs nn.Module.__getattr__ an exception.
    values = vars(module)
    attrs = [(key, values[key]) for key in _RECORDED_ATTRS
             if key in values and isinstance(values[key], _ATTR_TYPES)]
    if isinstance(module, nn.Linear | torchapi.ConvNd):
        attrs.append(("bias", module.bias is not None))
    return tuple(attrs)


_NAMES: dict[Any, tuple[str, str]] = {}


def _op_names(func: Any) -> tuple[str, str]:
    """(row name, row type): ``("relu", "F.relu")``, ``("view", "Tensor.view")``, ``("add", "+")``."""
    if func not in _NAMES:
        full = resolve_name(func) or getattr(func, "__qualname__", repr(func))
        short = full.rsplit(".", 1)[-1]
        if short.startswith("__") and short.endswith("__"):
            short = short.strip("_")
            # __radd__ and __iadd__ are still an "add" row; the type column keeps the difference.
            base = short[1:] if short[0] in "ir" and short[1:] in _OPERATORS else short
            _NAMES[func] = (base, _OPERATORS.get(short, f"Tensor.__{short}__"))
        else:
            kind = full.replace("torch.nn.functional.", "F.").replace("torch.Tensor.", "Tensor.")
            _NAMES[func] = (short, kind)
    return _NAMES[func]


def _args_text(args: tuple, kwargs: dict) -> str:
    """The non-tensor arguments, e.g. ``-1, 2880`` for ``x.view(-1, 2880)``."""
    parts = [_arg_text(a) for a in args if not isinstance(a, torch.Tensor)]
    parts += [f"{k}={_arg_text(v)}" for k, v in kwargs.items() if not isinstance(v, torch.Tensor)]
    return ", ".join(parts)


def _arg_text(value: Any) -> str:
    if isinstance(value, list | tuple) and any(isinstance(v, torch.Tensor) for v in value):
        return f"[{len(value)} tensors]"
    return repr(tuple(value)) if isinstance(value, torch.Size) else repr(value)


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
