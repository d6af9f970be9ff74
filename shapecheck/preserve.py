"""The user's model is put back exactly as it was found: one snapshot before any of its code
runs, restored after, whether the code returned, raised or was interrupted.

Every forward that shapecheck runs on a user's model runs inside ``preserved``. What the
forward may do, and what is put back:

- attributes it creates, reassigns or deletes in any module's ``__dict__`` (a cached mask,
  ``self.src_mask = ...`` over a ``None``, spectral_norm's recomputed ``weight``): the
  ``__dict__`` gets back the same keys holding the same objects;
- the contents of every list, dict and set held directly in a ``__dict__``. These are
  torch's own tables (``_parameters``, ``_buffers``, ``_modules``, every hook dictionary)
  and the user's top-level containers: a parameter swapped in a table, a hook registered in
  the forward, an item appended to ``self.history``. Objects nested deeper are the user's
  own and are not looked into;
- a module's class (a parametrization swaps it), every tensor's ``requires_grad`` and
  ``grad``, and the values of plain tensor attributes (a step counter kept as a plain
  tensor and bumped in place): they are copied before and written back if changed.

Parameters and buffers are never reached by the forward in the first place: the trace runs
on stand-ins (``modelstate.stand_ins``). The snapshot then serves as the one mechanism that
holds however the model is wired: ``functional_call`` swaps a weight under every name that
reaches it, and restores a module registered under two names with its stand-in still in
place; the snapshot puts the real one back.

Snapshots nest: the whole analysis is preserved, and each trace within it again, so every
trace starts from the user's state, not from what the last trace's forward left.
"""
from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

_IS = operator.is_


@dataclass
class _Container:
    """A list, dict or set in a module's ``__dict__``, and its contents when found."""

    value: Any
    keys: tuple[Any, ...]
    items: tuple[Any, ...]


@dataclass
class _Tensor:
    tensor: torch.Tensor
    requires_grad: bool
    grad: torch.Tensor | None
    version: int
    copy: torch.Tensor | None  # the values of a plain tensor attribute, to write back if changed


@dataclass
class _Module:
    module: nn.Module
    cls: type
    attrs: dict[str, Any]
    containers: list[_Container]


class Snapshot:
    """What a model's modules, tables and tensors were when it was taken; ``restore`` puts
    it back. Costs one pass over the modules and a shallow copy of each ``__dict__``."""

    def __init__(self, modules: list[nn.Module]) -> None:
        self.modules = [_take(m) for m in modules]
        registered: set[int] = set()
        for m in modules:
            registered.update(id(t) for t in m._parameters.values() if t is not None)
            registered.update(id(t) for t in m._buffers.values() if t is not None)
        self.tensors = _tensors(modules, registered)

    def restore(self) -> None:
        for kept in self.modules:
            _put_back(kept)
        for kept in self.tensors:
            _put_back_tensor(kept)


@contextmanager
def preserved(model: nn.Module, modules: list[nn.Module] | None = None) -> Iterator[None]:
    """Run the block, then put ``model`` back as it was, however the block ends.

    ``modules`` is every module of ``model`` once, when already at hand.
    """
    snapshot = Snapshot(_unique(model) if modules is None else modules)
    try:
        yield
    finally:
        snapshot.restore()


F = TypeVar("F", bound=Callable[..., Any])


def keeps_model(entry: F) -> F:
    """An entry point whose first argument is the user's model: the whole call is preserved,
    its forwards and everything around them (state_dict hooks a checkpoint check runs)."""
    @functools.wraps(entry)
    def preserving(model: Any, *args: Any, **kwargs: Any) -> Any:
        with preserved(model) if isinstance(model, nn.Module) else nullcontext():
            return entry(model, *args, **kwargs)
    return preserving  # type: ignore[return-value]


def _unique(model: nn.Module) -> list[nn.Module]:
    """Every module reachable from ``model``, once, shared and repeated ones included."""
    seen: dict[int, nn.Module] = {}
    stack = [model]
    while stack:
        module = stack.pop()
        if id(module) in seen:
            continue
        seen[id(module)] = module
        stack.extend(child for child in module._modules.values() if child is not None)
    return list(seen.values())


def _take(module: nn.Module) -> _Module:
    attrs = dict(vars(module))
    containers = [_Container(value, tuple(value), tuple(value.values()) if isinstance(value, dict) else ())
                  for value in attrs.values() if type(value) in _CONTAINERS or isinstance(value, dict)]
    return _Module(module, type(module), attrs, containers)


_CONTAINERS = (list, dict, set)


def _tensors(modules: list[nn.Module], registered: set[int]) -> list[_Tensor]:
    found: dict[int, _Tensor] = {}
    for module in modules:
        for kind in (module._parameters, module._buffers):
            for t in kind.values():
                if t is not None and id(t) not in found:
                    found[id(t)] = _Tensor(t, t.requires_grad, _grad(t), t._version, None)
        for value in vars(module).values():
            for t in _plain(value):
                if id(t) not in found and id(t) not in registered:
                    found[id(t)] = _Tensor(t, t.requires_grad, _grad(t), t._version, _copy(t))
    return list(found.values())


def _grad(t: torch.Tensor) -> torch.Tensor | None:
    # Only a leaf has a .grad of its own; asking a non-leaf warns in the user's log.
    return t.grad if t.is_leaf else None


def _plain(value: Any) -> tuple[torch.Tensor, ...]:
    """The tensors a plain attribute holds: itself, or the items of a list or tuple of them."""
    if isinstance(value, torch.Tensor):
        return (value,)
    if type(value) in (list, tuple) and value and isinstance(value[0], torch.Tensor):
        return tuple(v for v in value if isinstance(v, torch.Tensor))
    return ()


def _copy(t: torch.Tensor) -> torch.Tensor | None:
    """A copy of a plain tensor's values; none for meta (no values) or uninitialised ones."""
    if t.is_meta or isinstance(t, nn.parameter.UninitializedTensorMixin):
        return None
    with torch.no_grad():
        return t.detach().clone()


def _put_back(kept: _Module) -> None:
    module = kept.module
    if type(module) is not kept.cls:
        module.__class__ = kept.cls
    now = vars(module)
    if len(now) != len(kept.attrs) or not all(map(_IS, now.values(), kept.attrs.values())) \
            or list(now) != list(kept.attrs):
        now.clear()
        now.update(kept.attrs)
    for container in kept.containers:
        _refill(container)


def _refill(kept: _Container) -> None:
    value = kept.value
    if isinstance(value, dict):
        if tuple(value) == kept.keys and all(map(_IS, value.values(), kept.items)):
            return
        value.clear()
        value.update(zip(kept.keys, kept.items))
    elif isinstance(value, list):
        if len(value) != len(kept.keys) or not all(map(_IS, value, kept.keys)):
            value[:] = kept.keys
    elif value != set(kept.keys):
        value.clear()
        value.update(kept.keys)


def _put_back_tensor(kept: _Tensor) -> None:
    t = kept.tensor
    if t.requires_grad != kept.requires_grad and t.is_leaf:
        t.requires_grad_(kept.requires_grad)
    if t.is_leaf and t.grad is not kept.grad:
        t.grad = kept.grad
    if kept.copy is not None and t._version != kept.version:
        with torch.no_grad():
            t.copy_(kept.copy)
