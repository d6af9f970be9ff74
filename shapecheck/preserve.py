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
  the forward, a meta tensor put in ``self.cache``. Objects nested deeper, and containers
  outside the model (a list a hook closes over), are the user's own and not looked into;
- a module's class (a parametrization swaps it);
- plain tensor attributes, alone or in a tuple (a step counter kept as a plain tensor and
  bumped in place): their ``requires_grad``, ``grad`` and values, copied before and written
  back if changed.

Parameters and buffers are not reached by the forward in the first place: it runs on
stand-ins (``modelstate.stand_ins``), which also keeps their values, ``requires_grad`` and
``grad``. The snapshot is the one mechanism that holds however the model is wired:
``functional_call`` swaps a weight under every name that reaches it, and would restore a
module registered under two names with its stand-in still in place; the snapshot puts the
real one back.

Snapshots nest: the whole analysis is preserved, and each trace within it again, so every
trace starts from the user's state, not from what the last trace's forward left.

The cost is one pass over the modules to take, and a check made of C-level comparisons of
identities to restore, rewriting a module only where something changed: a few hundred
microseconds for resnet50 (docs/performance.md).
"""
from __future__ import annotations

import functools
import operator
import signal
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from itertools import chain, compress, repeat
from types import MappingProxyType
from typing import Any, TypeVar

import torch
from torch import nn
from torch.nn.parameter import UninitializedTensorMixin

from shapecheck import torchapi

_IS = operator.is_
_COPY = operator.methodcaller("copy")
_FIRST = operator.itemgetter(0)
_CONTAINERS = frozenset({dict, OrderedDict, list, set})  # torch's tables and the usual user containers
_DICTS = frozenset({dict, OrderedDict})

# The snapshots open in this context, by model: a nested ``preserved`` of the same model
# restores the outer one's state instead of taking another (the state is the same).
_OPEN: ContextVar[Mapping[int, Snapshot]] = ContextVar("shapecheck.preserve", default=MappingProxyType({}))


class Snapshot:
    """What a model's modules, their containers and plain tensors were when it was taken.

    Taking it is C-level work over every attribute (``map``, ``compress``, ``chain``) and a
    Python step only for tuples and tensors; ``restore`` checks the same way that nothing
    changed, and rewrites modules one by one only where something did.
    """

    __slots__ = ("modules", "classes", "dicts", "keys", "values", "sizes", "empty", "tables", "table_copies",
                 "table_keys", "table_values", "table_sizes", "others", "tensors")

    def __init__(self, modules: list[nn.Module]) -> None:
        self.modules = modules
        self.classes = list(map(type, modules))
        self.dicts = list(map(dict.copy, map(vars, modules)))
        self.keys = list(chain.from_iterable(self.dicts))
        self.values = list(chain.from_iterable(map(dict.values, self.dicts)))
        self.sizes = list(map(len, self.dicts))
        kinds = list(map(type, self.values))
        holders = list(compress(self.values, map(_CONTAINERS.__contains__, kinds)))
        self.empty = list(compress(holders, map(operator.not_, holders)))  # most hook tables
        full = list(compress(holders, holders))
        copies = list(map(_COPY, full))
        # The dicts among them (the parameter, buffer and child tables) are checked all at once.
        is_dict = list(map(_DICTS.__contains__, map(type, full)))
        self.tables = list(compress(full, is_dict))
        self.table_copies = list(compress(copies, is_dict))
        self.table_keys = list(chain.from_iterable(self.table_copies))
        self.table_values = list(chain.from_iterable(map(dict.values, self.table_copies)))
        self.table_sizes = list(map(len, self.table_copies))
        self.others = [(value, kept) for value, kept, d in zip(full, copies, is_dict) if not d]
        # Plain tensors, alone or first in a tuple; isinstance(x, Tensor) runs Python code
        # per call, so it is asked once per type.
        tuples = list(compress(self.values, map(_IS, kinds, repeat(tuple))))
        tuples = list(compress(tuples, tuples))
        firsts = list(map(type, map(_FIRST, tuples)))
        tensors = {kind for kind in {*kinds, *firsts} if issubclass(kind, torch.Tensor)}
        plain = [*compress(self.values, map(tensors.__contains__, kinds)),
                 *(t for held in compress(tuples, map(tensors.__contains__, firsts))
                   for t in held if isinstance(t, torch.Tensor))]
        self.tensors = _tensors(plain)

    def restore(self) -> None:
        """Put back whatever differs from the snapshot; each part is checked at C speed
        first, and walked object by object only when that check finds a change."""
        modules = self.modules
        if list(map(type, modules)) != self.classes:
            for module, cls in zip(modules, self.classes):
                if module.__class__ is not cls:
                    module.__class__ = cls
        if list(map(len, map(vars, modules))) != self.sizes or list(chain.from_iterable(map(vars, modules))) != self.keys \
                or not all(map(_IS, chain.from_iterable(map(dict.values, map(vars, modules))), self.values)):
            for module, attrs in zip(modules, self.dicts):
                now = vars(module)
                if now.keys() != attrs.keys() or not all(map(_IS, now.values(), attrs.values())):
                    now.clear()
                    now.update(attrs)
        if any(self.empty):
            for value in self.empty:
                value.clear()
        if list(map(len, self.tables)) != self.table_sizes or list(chain.from_iterable(self.tables)) != self.table_keys \
                or not all(map(_IS, chain.from_iterable(map(dict.values, self.tables)), self.table_values)):
            for value, kept in zip(self.tables, self.table_copies):
                if not _same(value, kept):
                    _refill(value, kept)
        for value, kept in self.others:
            if not _same(value, kept):
                _refill(value, kept)
        for t, requires_grad, grad, version, copy in self.tensors:
            if t.requires_grad is not requires_grad and t.is_leaf:
                t.requires_grad_(requires_grad)
            if grad is not _NO_GRAD and t.grad is not grad:
                t.grad = grad
            if copy is not None and _written(t, version, copy):
                with torch.no_grad():
                    t.copy_(copy)


_NO_GRAD = object()  # a non-leaf's grad: not its own, never read


@contextmanager
def preserved(model: nn.Module, modules: list[nn.Module] | None = None) -> Iterator[None]:
    """Run the block, then put ``model`` back as it was, however the block ends.

    ``modules`` is every module of ``model`` once, when already at hand. Within a block
    that already preserves ``model`` (a trace inside an analysis), the model is as that
    block's snapshot found it, so that snapshot is restored again rather than a new one
    taken.
    """
    open_now = _OPEN.get()
    outer = open_now.get(id(model))
    if outer is not None:
        try:
            yield
        finally:
            with _signals_held():
                outer.restore()
        return
    snapshot = Snapshot(_unique(model) if modules is None else modules)
    token = _OPEN.set({**open_now, id(model): snapshot})
    try:
        yield
    finally:
        _OPEN.reset(token)
        with _signals_held():
            snapshot.restore()


@contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and the --timeout alarm wait until a restore has finished: one arriving in the
    middle would leave the model half put back. They are delivered right after."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield  # other threads never run Python's signal handlers
        return
    held = {signal.SIGINT, signal.SIGALRM}
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


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
    seen: dict[int, nn.Module] = {id(model): model}
    stack = [model]
    while stack:
        for child in stack.pop()._modules.values():
            if child is not None and id(child) not in seen:
                seen[id(child)] = child
                stack.append(child)
    return list(seen.values())


def _tensors(plain: list[torch.Tensor]) -> list[tuple[Any, ...]]:
    """(tensor, requires_grad, grad, version, copy of its values) for each plain tensor."""
    found: dict[int, tuple[Any, ...]] = {}
    for t in plain:
        if id(t) not in found:
            found[id(t)] = (t, t.requires_grad, t.grad if t.is_leaf else _NO_GRAD, torchapi.version(t), _copy(t))
    return list(found.values())


def _written(t: torch.Tensor, version: int | None, copy: torch.Tensor) -> bool:
    if version is None:
        return not torch.equal(t.detach(), copy)
    return torchapi.version(t) != version


def _copy(t: torch.Tensor) -> torch.Tensor | None:
    """A copy of a plain tensor's values; none for meta (no values) or uninitialised ones."""
    if t.is_meta or isinstance(t, UninitializedTensorMixin):
        return None
    with torch.no_grad():
        return t.detach().clone()


def _same(value: Any, kept: Any) -> bool:
    """A container holds the objects it held (same keys, same objects, same order)."""
    if isinstance(value, dict):
        return list(value) == list(kept) and all(map(_IS, value.values(), kept.values()))
    if isinstance(value, list):
        return len(value) == len(kept) and all(map(_IS, value, kept))
    return value == kept


def _refill(value: Any, kept: Any) -> None:
    if isinstance(value, list):
        value[:] = kept
    else:
        value.clear()
        value.update(kept)
