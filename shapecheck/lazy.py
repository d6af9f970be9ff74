"""Lazy modules (``nn.LazyLinear``, ``nn.LazyConv2d``, ``nn.LazyBatchNorm2d``) infer their sizes
from the first input they see. An analysis must not be that first input for the user's own
module, which would then hold weights it never asked for: shapecheck infers them on a copy.

The copy shares no memory with the model: every parameter and buffer is replaced in the
copy by an empty meta tensor of its shape (``copy.deepcopy``'s memo), and an uninitialised
one by an uninitialised meta parameter, which materialises on meta. A bare meta forward of
the copy initialises it, or, when the model fails before a lazy layer, one trace (which goes
on past shape errors); the analysis then runs on the copy, with the inferred sizes in its
rows and its parameters counted after inference.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter, UninitializedTensorMixin

from shapecheck.spec import InputSpec


def has_uninitialized(model: nn.Module) -> bool:
    return any(isinstance(t, UninitializedTensorMixin)
               for m in model.modules() for t in (*m._parameters.values(), *m._buffers.values()))


def initialized(model: nn.Module, inputs: Sequence[InputSpec], batch: int, mode: Any) -> nn.Module:
    """``model`` itself when nothing in it is lazy; otherwise a meta copy with every lazy size inferred."""
    if not has_uninitialized(model):
        return model
    # The trace and the model state import this module, not the other way round.
    from shapecheck.modelstate import make_arguments
    from shapecheck.trace import trace

    twin = copy.deepcopy(model, memo=_meta_memo(model))
    try:  # a bare forward: torch 2.5 and older cannot materialise a lazy buffer under a function mode
        with torch.no_grad():
            args, kwargs = make_arguments(inputs, batch, "meta")
            twin(*args, **kwargs)
    except Exception:  # noqa: BLE001 - a broken layer before a lazy one: the trace goes on past it
        trace(twin, inputs, batch, mode, keep=True)  # the twin is ours: it keeps the sizes inferred
    return twin


def meta_twin(model: nn.Module, mode: Any) -> nn.Module:
    """A copy of ``model`` with every weight on meta, in ``mode``, for forwards that must not
    touch the user's model. Each module is copied shallowly, with its own parameter, buffer
    and child tables: a deep copy of resnet50 costs as much as two forwards of it. Every
    list, dict and set in a module's ``__dict__`` (the hook tables, a cache the forward
    fills) is the twin's own copy, so the twin's forwards share no mutable state with the
    model."""
    weights = _meta_memo(model)
    clones: dict[int, nn.Module] = {}

    def clone(module: nn.Module) -> nn.Module:
        if id(module) not in clones:
            twin = clones[id(module)] = copy.copy(module)
            for key, value in vars(module).items():
                if type(value) in _CONTAINERS or isinstance(value, list | dict | set):
                    vars(twin)[key] = value.copy()  # copy.copy goes through __reduce_ex__ for an OrderedDict: 10x
            vars(twin)["_parameters"] = {k: None if v is None else weights[id(v)] for k, v in module._parameters.items()}
            vars(twin)["_buffers"] = {k: None if v is None else weights[id(v)] for k, v in module._buffers.items()}
            vars(twin)["_modules"] = {k: None if v is None else clone(v) for k, v in module._modules.items()}
            for key, value in vars(module).items():  # an RNN's _flat_weights: its own weights again
                if isinstance(value, list | tuple) and value and all(id(t) in weights for t in value):
                    vars(twin)[key] = type(value)(weights[id(t)] for t in value)
        return clones[id(module)]

    twin = clone(model)
    if mode != "same":
        twin.train(mode == "train")
    return twin


_CONTAINERS = frozenset({dict, OrderedDict, list, set})  # the usual ones, without isinstance's walk


def _meta_memo(model: nn.Module) -> dict[int, Any]:
    memo: dict[int, Any] = {}
    for module in model.modules():
        for tensor in (*module._parameters.values(), *module._buffers.values()):
            if tensor is not None and id(tensor) not in memo:
                memo[id(tensor)] = _meta(tensor)
    return memo


def _meta(t: torch.Tensor) -> torch.Tensor:
    if isinstance(t, UninitializedParameter):
        return UninitializedParameter(requires_grad=t.requires_grad, device="meta", dtype=t.dtype)
    if isinstance(t, UninitializedBuffer):
        return UninitializedBuffer(requires_grad=t.requires_grad, device="meta", dtype=t.dtype)
    empty = torch.empty(t.shape, dtype=t.dtype, device="meta")
    return nn.Parameter(empty, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else empty


def numel(t: torch.Tensor) -> int:
    """``t.numel()``, 0 for a lazy tensor whose size is not known yet."""
    return 0 if isinstance(t, UninitializedTensorMixin) else t.numel()
