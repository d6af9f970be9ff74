"""Memoized meta kernels: an op that ran once on inputs of the same shapes is not run again.

A meta kernel only computes output metadata, yet many of torch's are Python (``torch._refs``)
and cost 100-500 us per call. A model repeats itself (a ViT has 32 identical blocks), so
the trace keys each op by its inputs' shapes, strides and dtypes and its other arguments,
and replays the recorded outputs as fresh ``empty_strided`` meta tensors. Ops that alias or
mutate an input (views, ``add_``) always run, because their outputs must share storage.

Two coarser keys save more: a plain torch.nn leaf (Conv2d, BatchNorm2d, ReLU) is keyed as a
whole by its class, its configuration and its weights' and inputs' metadata, and a torch
function the forward calls (``F.relu``, ``torch.cat``, ``+``) by the function and its
arguments. A hit skips the Python wrappers and every dispatch below them, which is most of
what a traced row costs. Their outputs may be views (``flatten``) or an input itself
(``Identity``, ``inplace=True``): a replay makes a fresh tensor for a view, which only
differs in sharing memory that meta tensors do not have, and hands back the input itself.
A function that changes an input's shape or strides in place (``unsqueeze_``) always runs.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

_SIMPLE = (int, float, bool, str, type(None), torch.dtype, torch.device, torch.layout, torch.memory_format)
_SIMPLE_TYPES = frozenset(_SIMPLE)
_PURE: dict[Any, bool] = {}
_META = torch.device("meta")  # parsing the string costs a fifth of a replay


class Memo:
    def __init__(self, capacity: int = 100_000) -> None:
        self.results: dict[tuple, tuple[Any, int]] = {}
        self.capacity = capacity

    def key(self, func: Any, args: tuple, kwargs: dict) -> tuple | None:
        """The key of an aten op; None for one whose outputs alias or write its inputs."""
        return _call_key(func, args, kwargs) if _pure(func) else None

    def module_key(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple | None:
        """The key of a call of a torch.nn leaf; None when its state holds anything unkeyable."""
        try:
            return (type(module), _config(module), _key(tuple(module._parameters.items())),
                    _key(tuple(module._buffers.items())), _key(args),
                    _key(tuple(sorted(kwargs.items()))) if kwargs else ())
        except _Unkeyable:
            return None

    def call_key(self, func: Any, args: tuple, kwargs: dict) -> tuple | None:
        """The key of a torch function called by the model's forward; None for one that writes."""
        return None if "out" in kwargs or _writes(func) else _call_key(func, args, kwargs)

    def replay(self, key: tuple, inputs: Sequence[torch.Tensor] = ()) -> tuple[Any, int] | None:
        """The outputs and FLOPs of the call recorded under ``key``; an output that was one
        of that call's input tensors is the same input of this call."""
        hit = self.results.get(key)
        return (_build(hit[0], inputs), hit[1]) if hit is not None else None

    def store(self, key: tuple, out: Any, flops: int, inputs: Sequence[torch.Tensor] = ()) -> None:
        if len(self.results) >= self.capacity:
            self.results.clear()  # a long test session must not grow without bound
        try:
            self.results[key] = (_record(out, {id(t): i for i, t in enumerate(inputs)}), flops)
        except _Unkeyable:
            pass


_SHARED: dict[torch.dtype, Memo] = {}


def shared() -> Memo:
    """The process's memo. Kernels are the same for every model, so the analyses of one
    process (a test session, the torchvision sweep) share what they ran. Factory ops fill in
    the default dtype, so each default dtype has its own."""
    return _SHARED.setdefault(torch.get_default_dtype(), Memo())


class _Unkeyable(Exception):
    pass


def _call_key(func: Any, args: tuple, kwargs: dict) -> tuple | None:
    try:
        return (func, _key(args), _key(tuple(sorted(kwargs.items()))) if kwargs else ())
    except _Unkeyable:
        return None


_WRITING_DUNDERS = frozenset({
    "__iadd__", "__isub__", "__imul__", "__itruediv__", "__ifloordiv__", "__imod__", "__ipow__",
    "__imatmul__", "__iand__", "__ior__", "__ixor__", "__ilshift__", "__irshift__",
    "__setitem__", "__delitem__", "__set__",  # x[i] = y, x.data = y
})


def _writes(func: Any) -> bool:
    """An in-place function: ``add_``, ``+=``, ``x[i] = y``, ``x.data = y``."""
    name = getattr(func, "__name__", "")
    return (name.endswith("_") and not name.endswith("__")) or name in _WRITING_DUNDERS


def _pure(func: Any) -> bool:
    """No output aliases an input and no input is written: safe to replay. (A random op is
    as safe: its outputs' metadata does not depend on the draw.)"""
    if func not in _PURE:
        schema = func._schema
        _PURE[func] = not schema.is_mutable and not any(r.alias_info for r in schema.returns)
    return _PURE[func]


# nn.Module's own bookkeeping (hook dicts, _parameters, ...): everything else in a leaf's
# __dict__ is configuration that may decide its output (stride, eps, training, inplace).
_INTERNALS = frozenset(vars(nn.Module())) - {"training"}


def _config(module: nn.Module) -> tuple:
    return tuple((k, _key(v)) for k, v in vars(module).items() if k not in _INTERNALS)


def _key(value: Any) -> Any:
    kind = type(value)
    if kind is float or kind is bool:
        return (kind, value)  # 2, 2.0 and True are equal keys, but x * 2.0 is float and x * 2 is not
    if kind in _SIMPLE_TYPES:  # exact types first: this runs for every argument of every op
        return value
    if kind is list or kind is tuple:
        return (kind, *[_key(v) for v in value])
    if isinstance(value, torch.Tensor):
        if not value.is_meta:
            raise _Unkeyable  # real values may decide the output (the CPU fallback)
        # Plain tuples, unlike torch.Size and classes, leave the garbage collector's view once
        # it has seen them: a memo of thousands of entries would otherwise be walked at every
        # full collection.
        return ("T", tuple(value.shape), value.stride(), value.dtype, value.storage_offset())
    if isinstance(value, _SIMPLE):
        return value
    raise _Unkeyable


def _record(out: Any, inputs: dict[int, int]) -> Any:
    if isinstance(out, torch.Tensor):
        if id(out) in inputs:  # Identity, Dropout in eval, an in-place ReLU
            return ("I", inputs[id(out)])
        if not out.is_meta:
            raise _Unkeyable  # torch.ones(4, device="cpu") holds values: a meta replay would lose them
        return ("T", tuple(out.shape), out.stride(), out.dtype)
    if isinstance(out, list | tuple):
        return (type(out).__name__, *(_record(v, inputs) for v in out))
    if isinstance(out, _SIMPLE):
        return ("V", out)
    raise _Unkeyable


def _build(record: Any, inputs: Sequence[torch.Tensor]) -> Any:
    kind = record[0]
    if kind == "T":
        return torch.empty_strided(record[1], record[2], dtype=record[3], device=_META)
    if kind == "V":
        return record[1]
    if kind == "I":
        return inputs[record[1]]
    items = [_build(r, inputs) for r in record[1:]]
    return items if kind == "list" else tuple(items)
