"""Every use of torch's private API, in one place, each with feature detection.

shapecheck supports a range of torch releases (see pyproject.toml and docs/compat.md). The
names below are not part of torch's public API and have moved or appeared between
releases. Each is looked up once here; where one is missing, shapecheck falls back to
torch's own public behaviour (slower, never wrong) instead of failing at import.
"""
from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn

# Dispatch-level modes: torch.utils._python_dispatch since torch 1.13, unchanged through 2.15.
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

# Base classes that torch.nn keeps private but every layer of a family derives from.
ConvNd: type = nn.modules.conv._ConvNd
ConvTransposeNd: type = nn.modules.conv._ConvTransposeNd
NormBase: type = nn.modules.batchnorm._NormBase  # BatchNorm*d and InstanceNorm*d
LazyMixin: type = nn.modules.lazy.LazyModuleMixin


def no_torch_function() -> AbstractContextManager[Any]:
    """Run our own tensor reads (``.shape``, ``is_meta``) without the active function modes."""
    return torch._C.DisableTorchFunction()


def no_torch_dispatch() -> AbstractContextManager[Any]:
    """Make tensors without the active dispatch modes seeing them (a memo replay)."""
    disable = getattr(torch._C, "_DisableTorchDispatch", None)
    return disable() if disable is not None else nullcontext()


class DispatchMode(TorchDispatchMode):
    """A dispatch mode whose handler torch does not wrap in ``_disable_dynamo``.

    torch wraps a subclass's ``__torch_dispatch__`` when the class is created, unless
    ``_should_skip_dynamo`` says no; the first call of a wrapped handler imports all of
    torch._dynamo (1.2-1.8 s), although a trace never runs compiled code. Releases without
    the hook never wrap, and ignore the method.
    """

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False


def version(t: torch.Tensor) -> int | None:
    """The tensor's version counter (bumped by every in-place write), or None where a
    release has none: the caller then compares values instead (slower, never wrong)."""
    return getattr(t, "_version", None)


def is_compiled(module: nn.Module) -> bool:
    """A ``torch.compile`` wrapper (torch._dynamo's OptimizedModule)."""
    return type(module).__name__ == "OptimizedModule" and isinstance(getattr(module, "_orig_mod", None), nn.Module)


def uncompiled(model: nn.Module) -> nn.Module:
    """The module a ``torch.compile`` wrapper holds: a trace of the wrapper would compile the
    model first (seconds per input shape, with dynamo's warnings about meta tensors printed
    to the user's log) to learn the same shapes the module gives eagerly."""
    return model._orig_mod if is_compiled(model) else model  # type: ignore[return-value]


def shown_name(name: str) -> str:
    """A module's name as its author wrote it: ``blocks.1`` for ``blocks.1._orig_mod``, the
    module a compiled submodule wraps."""
    return ".".join(part for part in name.split(".") if part != "_orig_mod")


def global_module_hooks() -> bool:
    """Whether any process-wide forward (pre-)hook is registered (nn.modules.module's globals)."""
    module = nn.modules.module
    return bool(getattr(module, "_global_forward_hooks", None)
                or getattr(module, "_global_forward_pre_hooks", None))


# -- device redirection -----------------------------------------------------------------
# torch.utils._device since torch 2.0: a function mode that torch.get_default_device() reads.
from torch.utils._device import DeviceContext as DeviceMode  # noqa: E402,F401 - re-exported
from torch.utils._device import _device_constructors  # noqa: E402


def device_constructors() -> frozenset[Any]:
    """The factories that ``with torch.device(...)`` redirects to that device."""
    return frozenset(_device_constructors())


# -- FLOP formulas ----------------------------------------------------------------------
try:
    from torch.utils.flop_counter import flop_registry as _flop_registry
except ImportError:  # pragma: no cover
    _flop_registry = {}


def flops(func: Any, args: tuple, kwargs: dict, out: Any) -> int:
    """torch.utils.flop_counter's count for one aten op; 0 for an op it has no formula for.

    (A shortcut past the formulas' pytree map, keyed on shape_wrapper's qualname, was never
    taken: functools.wraps gives the wrapper its formula's name. The memo replays most ops'
    FLOPs anyway, so the formulas are called as torch calls them.)
    """
    formula = _flop_registry.get(getattr(func, "_overloadpacket", None))
    return formula(*args, **kwargs, out_val=out) if formula is not None else 0


# -- aten ops ---------------------------------------------------------------------------
def aten_ops(names: Iterable[str]) -> list[Any]:
    """The overloads named ``"packet.overload"`` that this release has (``_safe_softmax``
    arrived in torch 2.5), in order; the rest are left out."""
    found = []
    for name in names:
        packet, _, overload = name.partition(".")
        op = getattr(getattr(aten, packet, None), overload or "default", None)
        if op is not None:
            found.append(op)
    return found


# -- value reads ------------------------------------------------------------------------
# What torch's errors say when code needs a meta tensor's values (``.item()``, ``nonzero``,
# a branch on a tensor), or mixes meta with real tensors. The one table: the trace, the
# sizes solver and the building step all ask here.
# Compared in lower case: torch 2.6 says "with Meta tensors", 2.14 "on meta tensors".
_VALUE_MARKERS = ("meta tensor", "register_meta", "'meta' backend", "on meta", "device='meta'", "meta kernel",
                  # a forward that makes CPU tensors itself, on either side of an op
                  "expected device meta", "tensor on device meta is not", "meta and cpu", "cpu and meta")


def reads_values(exc: BaseException) -> bool:
    """Whether ``exc`` says the code needed real values that the meta device does not have."""
    text = str(exc).lower()
    return any(marker in text for marker in _VALUE_MARKERS)
