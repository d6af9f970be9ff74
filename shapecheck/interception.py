"""The two torch modes a trace runs under: one records the forward's functional ops (and puts
the tensors it creates on the trace's device), one counts FLOPs and replays memoized kernels."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import torch
from torch.overrides import TorchFunctionMode

from shapecheck import fastmeta, sources, torchapi

if TYPE_CHECKING:
    from shapecheck.trace import Tracer


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


class FunctionMode(TorchFunctionMode):
    """Records functional ops, and puts tensors the forward creates on the trace's device.

    The device is this mode's job rather than ``with torch.device(...)``'s, because that
    context is a second Python mode in the path of every torch call: 5% of a trace.
    """

    def __init__(self, tracer: Tracer, device: str) -> None:
        super().__init__()
        self.tracer, self.device = tracer, torch.device(device)

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _CONSTRUCTORS and kwargs.get("device") is None:
            kwargs["device"] = self.device
        if self.tracer.suspended or getattr(func, "__name__", "") == "__get__":
            return func(*args, **kwargs)
        if func in _IGNORED:  # no row; a copy (x.contiguous(), x.float()) keeps its source's producer
            out = func(*args, **kwargs)
            if args and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor) and out is not args[0]:
                self.tracer.alias(out, args[0])
            return out
        # Every call, torch's own included: MultiheadAttention reads out_proj.weight without calling it.
        self.tracer.touched.update(id(a) for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor))
        frame = sources.user_frame(sys._getframe(1))
        if frame is None:
            return func(*args, **kwargs)
        return self.tracer.function_call(func, args, kwargs, frame)


class FlopMode(torchapi.DispatchMode):
    """Attribute FLOPs to every open row, with torch.utils.flop_counter's own formulas, and
    replay the meta kernels of ops already seen with the same input metadata."""

    def __init__(self, tracer: Tracer) -> None:
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


class FastMetaMode(torchapi.DispatchMode):
    """Only the fast meta kernels: a bare forward of the sizes solver's checks, where torch's
    own meta batch_norm (a Python decomposition) costs most of the forward."""

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        fast = fastmeta.outputs(func, args, kwargs)
        return fast if fast is not None else func(*args, **kwargs)
