"""Everything process-wide that shapecheck changes, and why; safe under threads and nesting.

shapecheck runs inside other people's processes (pytest, notebooks, training scripts), so
every switch here follows one discipline:

- the patched attribute is replaced by a *dispatcher* while at least one analysis or build
  in the process uses it, installed once under one re-entrant lock and restored, exactly as
  found, when the last user leaves;
- the dispatcher asks a ``contextvars.ContextVar`` for the handler of the *current* context.
  Another thread (a new thread starts with an empty context) and code outside the
  ``with`` block see no handler and get torch's own behaviour, untouched;
- nested uses set and reset their own token, so an analysis inside an analysis gets its
  own handler and hands the outer one back.

What is patched:

- ``nn.Module.__call__``, for a trace: forward hooks cannot catch a failing layer and
  substitute its output, so the call itself is intercepted;
- ``nn.Module.__getattr__``, for a trace: a submodule the forward reads without calling it
  (an attention dropout whose ``p`` is read, a helper used through its methods) is used;
- ``nn.Module.register_parameter``, for a build: a constructor that needs real values for
  its arithmetic gets them, while its parameters go to meta as they are registered;
- the ``nn.init`` fill functions, for a build: they skip meta tensors, whose values do not
  exist (torch runs slow Python references for them otherwise);
- one global module forward pre-hook, for the sizes solver: it reads each window's pixels;
- the cyclic garbage collector, paused for an analysis (reference counting still frees);
- the recursion limit, doubled for a trace (``recursion_room``);
- the ``TORCH*`` environment variables that torch's own imports set during an analysis,
  put back after it (``torch_environment_kept``).
"""
from __future__ import annotations

import functools
import gc
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from torch import nn
from torch.nn.modules.module import register_module_forward_pre_hook

_LOCK = threading.RLock()


class _Switch:
    """One attribute replaced by a dispatcher while any context holds a handler for it."""

    def __init__(self, owner: Any, name: str, dispatcher: Callable[[Any, ContextVar], Any]) -> None:
        self.owner, self.name, self.make = owner, name, dispatcher
        self.handler: ContextVar[Any] = ContextVar(f"shapecheck.{name}", default=None)
        self.users = 0
        self.original: Any = None
        self.installed: Any = None

    @contextmanager
    def using(self, handler: Any) -> Iterator[Any]:
        """Route this context's calls to ``handler``; yields the original attribute."""
        with _LOCK:
            if self.users == 0:
                self.original = vars(self.owner)[self.name] if isinstance(self.owner, type) \
                    else getattr(self.owner, self.name)
                self.installed = self.make(self.original, self.handler)
                setattr(self.owner, self.name, self.installed)
            self.users += 1
            original = self.original
        token = self.handler.set(handler)
        try:
            yield original
        finally:
            self.handler.reset(token)
            with _LOCK:
                self.users -= 1
                if self.users == 0:
                    # Someone who wrapped our dispatcher meanwhile keeps theirs; ours then
                    # falls through to the original for every context, as its handler is unset.
                    if getattr(self.owner, self.name) is self.installed:
                        setattr(self.owner, self.name, self.original)
                    self.original = self.installed = None


def _call_dispatcher(original: Any, handler: ContextVar) -> Any:
    def __call__(module: nn.Module, *args: Any, **kwargs: Any) -> Any:  # noqa: N807 - it is __call__
        active = handler.get()
        if active is None:
            return original(module, *args, **kwargs)
        return active(original, module, args, kwargs)
    return __call__


def _method_dispatcher(original: Any, handler: ContextVar) -> Any:
    @functools.wraps(original)
    def method(*args: Any, **kwargs: Any) -> Any:
        active = handler.get()
        return original(*args, **kwargs) if active is None else active(original, *args, **kwargs)
    return method


def _getattr_dispatcher(original: Any, handler: ContextVar) -> Any:
    def __getattr__(module: nn.Module, name: str) -> Any:  # noqa: N807 - it is __getattr__
        found = original(module, name)
        active = handler.get()
        if active is not None and isinstance(found, nn.Module):
            active(found)
        return found
    return __getattr__


MODULE_CALL = _Switch(nn.Module, "__call__", _call_dispatcher)
# nn.Module.__getattr__ serves only what __dict__ lacks: submodules, parameters, buffers.
MODULE_FETCH = _Switch(nn.Module, "__getattr__", _getattr_dispatcher)
REGISTER_PARAMETER = _Switch(nn.Module, "register_parameter", _method_dispatcher)

# Every nn.init function only writes values. transformers' no_init_weights skips the same list.
INITS = tuple(_Switch(nn.init, name, _method_dispatcher) for name in (
    "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_"))


@contextmanager
def module_calls(handler: Callable[[Any, nn.Module, tuple, dict], Any]) -> Iterator[Any]:
    """``handler(original_call, module, args, kwargs)`` for every module call of this context."""
    with MODULE_CALL.using(handler) as original:
        yield original


@contextmanager
def module_fetches(handler: Callable[[nn.Module], Any]) -> Iterator[None]:
    """``handler(submodule)`` for every submodule this context reads as an attribute
    (``self.drop.p``, ``self.corr.index(...)``): a module used without being called."""
    with MODULE_FETCH.using(handler):
        yield


@contextmanager
def parameters_registered(handler: Callable[..., Any]) -> Iterator[None]:
    """``handler(original, module, name, param)`` for every parameter this context registers."""
    with REGISTER_PARAMETER.using(handler):
        yield


@contextmanager
def inits(handler: Callable[..., Any]) -> Iterator[None]:
    """``handler(original, tensor, *args, **kwargs)`` for every nn.init call of this context."""
    with _all(INITS, handler):
        yield


@contextmanager
def _all(switches: tuple[_Switch, ...], handler: Any, at: int = 0) -> Iterator[None]:
    if at == len(switches):
        yield
        return
    with switches[at].using(handler), _all(switches, handler, at + 1):
        yield


# -- the global forward pre-hook ---------------------------------------------------------
_PRE_HOOK: ContextVar[Callable[[nn.Module, tuple], Any] | None] = ContextVar("shapecheck.pre_hook", default=None)
_hook_users = 0
_hook_handle: Any = None


def _pre_hook(module: nn.Module, args: tuple) -> None:
    active = _PRE_HOOK.get()
    if active is not None:
        active(module, args)


@contextmanager
def module_pre_hook(hook: Callable[[nn.Module, tuple], Any]) -> Iterator[None]:
    """``hook(module, args)`` before every module call of this context: one global hook,
    registered while any context needs it."""
    global _hook_users, _hook_handle
    with _LOCK:
        if _hook_users == 0:
            _hook_handle = register_module_forward_pre_hook(_pre_hook)
        _hook_users += 1
    token = _PRE_HOOK.set(hook)
    try:
        yield
    finally:
        _PRE_HOOK.reset(token)
        with _LOCK:
            _hook_users -= 1
            if _hook_users == 0:
                _hook_handle.remove()
                _hook_handle = None


# -- the garbage collector ---------------------------------------------------------------
_gc_users = 0
_gc_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while any analysis or build runs.

    A trace allocates hundreds of thousands of short-lived objects, and each allocation
    burst triggers collections that walk every object still alive: in a process that keeps
    earlier reports (a test session, the 80-model sweep) those passes cost 13% of the run.
    Reference counting still frees everything at once; cycles wait for the next collection.
    The first user records whether the collector ran and the last one restores that, so
    overlapping analyses in threads leave it as they found it.
    """
    global _gc_users, _gc_was_enabled
    with _LOCK:
        if _gc_users == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_users += 1
    try:
        yield
    finally:
        with _LOCK:
            _gc_users -= 1
            if _gc_users == 0 and _gc_was_enabled:
                gc.enable()


_depth_users = 0
_depth_found = 0
_depth_set = 0


@contextmanager
def recursion_room() -> Iterator[None]:
    """Twice Python's recursion limit while any trace runs.

    Each module level of a forward costs a few more frames under the tracer (the call
    dispatcher, the tracer's own call) than in plain PyTorch, so a model of 200 nested
    Sequentials, which runs in PyTorch, would otherwise fail only under shapecheck. The
    first user records the limit and the last one restores it, unless someone changed it
    meanwhile: theirs then stands. Twice the default stays far inside the C stack.
    """
    global _depth_users, _depth_found, _depth_set
    with _LOCK:
        if _depth_users == 0:
            _depth_found = sys.getrecursionlimit()
            _depth_set = 2 * _depth_found
            sys.setrecursionlimit(_depth_set)
        _depth_users += 1
    try:
        yield
    finally:
        with _LOCK:
            _depth_users -= 1
            if _depth_users == 0 and sys.getrecursionlimit() == _depth_set:
                sys.setrecursionlimit(_depth_found)


_env_users = 0
_env_found: dict[str, str] = {}


def _torch_variables() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key.startswith("TORCH")}


@contextmanager
def torch_environment_kept() -> Iterator[None]:
    """The ``TORCH*`` environment variables as found, once the last analysis ends.

    Some of torch's meta kernels are Python references that import ``torch._dynamo`` on
    first use, and that import sets ``TORCHINDUCTOR_CACHE_DIR`` in the environment, which the
    user's later subprocesses inherit. Only torch's own variables are put back: another
    thread's changes to anything else are its own.
    """
    global _env_users, _env_found
    with _LOCK:
        if _env_users == 0:
            _env_found = _torch_variables()
        _env_users += 1
    try:
        yield
    finally:
        with _LOCK:
            _env_users -= 1
            if _env_users == 0:
                for key, value in _torch_variables().items():
                    if key not in _env_found:
                        del os.environ[key]
                    elif value != _env_found[key]:
                        os.environ[key] = _env_found[key]
