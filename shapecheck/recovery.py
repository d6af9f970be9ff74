"""What a failing layer would have produced: the stand-in that lets a trace go on.

After a shape error the trace substitutes the output the layer would give *if its declared
size matched what it received*: the same batch, the layer's own out channels or features,
and the spatial or sequence size from the layer's own arithmetic. Each function here says
how to get that output from torch itself, on meta:

- a layer whose declared input size is one number (Linear, Conv, RNN, attention) runs
  again on an input whose mismatched size is set to the declared one; every other size is
  what it received, so the layer's own arithmetic decides the rest;
- a layer that keeps its input's shape (the norms) hands back a tensor of that shape;
- where no such output exists (a kernel larger than its input, a ``cat`` of maps that
  disagree, a rank the layer cannot read) there is no stand-in: the trace stops there and
  says so, rather than invent shapes.

Pure functions of the module's configuration and the received tensors' metadata.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from shapecheck import torchapi

# A channels-last image is [B, H, W, C] with C a handful of colour planes.
_IMAGE_PLANES = 4


@dataclass(frozen=True)
class Rerun:
    """Call the layer again with these arguments; its outputs are the stand-in."""

    args: tuple
    kwargs: dict
    expected: tuple[int, ...]  # the first input's shape as the layer declared it
    how: str = "declared"  # "channels_last": the raw input read as [B, H, W, C]; "hidden": an RNN's h_0
    # Attention maps back to its embed_dim: declared to match what it received, its output
    # has the received width. The first output's last size becomes this.
    width: int | None = None

    def finish(self, out: Any) -> Any:
        """The rerun's outputs, with the first one's width as the repaired layer gives it."""
        if self.width is None:
            return out
        first = out[0] if isinstance(out, tuple) else out
        resized = torch.empty((*first.shape[:-1], self.width), dtype=first.dtype, device=first.device)
        return (resized, *out[1:]) if isinstance(out, tuple) else resized


@dataclass(frozen=True)
class Same:
    """The layer keeps its input's shape: the stand-in is a tensor like the input."""

    like: torch.Tensor


Repair = Rerun | Same


def for_module(module: nn.Module, args: tuple, kwargs: dict, from_input: bool) -> Repair | None:
    """The stand-in for ``module`` called on ``args``, or None when no correct one exists.

    ``from_input`` says the first argument is one of the model's own inputs, unchanged: only
    then can a channels-last image be told from a wrong channel count.
    """
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if isinstance(module, nn.MultiheadAttention):
        return _attention(module, args, kwargs)
    if x is None:
        return None
    if isinstance(module, nn.Linear) and x.dim() >= 1 and x.shape[-1] != module.in_features:
        return _rerun(args, kwargs, _with(x, -1, module.in_features))
    if isinstance(module, nn.Bilinear) and x.dim() >= 1 and x.shape[-1] != module.in1_features:
        return _rerun(args, kwargs, _with(x, -1, module.in1_features))
    if isinstance(module, torchapi.ConvNd):
        return _conv(module, x, args, kwargs, from_input)
    if isinstance(module, nn.modules.rnn.RNNBase):
        return _rnn(module, x, args, kwargs)
    if isinstance(module, nn.Embedding) and (x.is_floating_point() or x.is_complex()):
        return _rerun(args, kwargs, torch.empty(x.shape, dtype=torch.int64, device=x.device))
    return _keeps_shape(module, x)


def _conv(module: Any, x: torch.Tensor, args: tuple, kwargs: dict, from_input: bool) -> Repair | None:
    rank = len(module.kernel_size)
    if x.dim() != rank + 2 or x.shape[1] == module.in_channels:
        return None  # an unbatched or wrongly ranked input, or a spatial failure: nothing to stand in
    if from_input and looks_channels_last(tuple(x.shape), module.in_channels):
        permuted = torch.empty((x.shape[0], x.shape[-1], *x.shape[1:-1]), dtype=x.dtype, device=x.device)
        return _rerun(args, kwargs, permuted, "channels_last")
    return _rerun(args, kwargs, _with(x, 1, module.in_channels))


def looks_channels_last(shape: tuple[int, ...], channels: int) -> bool:
    """[B, H, W, C] fed where [B, C, H, W] belongs: the last size is the declared handful of
    colour planes and dimension 1 is not."""
    return len(shape) >= 4 and shape[-1] == channels <= _IMAGE_PLANES and shape[1] != channels


def _rnn(module: Any, x: torch.Tensor, args: tuple, kwargs: dict) -> Repair | None:
    hidden = len(args) > 1 or "hx" in kwargs
    if x.dim() not in (2, 3) or (x.shape[-1] == module.input_size and not hidden):
        return None
    # The outputs' shapes do not depend on the initial hidden state: drop it, it is the one
    # at fault when the input is right (and may be wrong too when it is not).
    rest = {k: v for k, v in kwargs.items() if k != "hx"}
    return Rerun((_with(x, -1, module.input_size),), rest, _with_shape(x, -1, module.input_size),
                 "hidden" if x.shape[-1] == module.input_size else "declared")


def _attention(module: nn.MultiheadAttention, args: tuple, kwargs: dict) -> Repair | None:
    names = ("query", "key", "value")
    given = dict(zip(names, args)) | {k: kwargs[k] for k in names if k in kwargs}
    if len(given) != 3 or not all(isinstance(t, torch.Tensor) and t.dim() in (2, 3) for t in given.values()):
        return None
    widths = {"query": module.embed_dim, "key": module.kdim, "value": module.vdim}
    if all(given[n].shape[-1] == widths[n] for n in names):
        return None
    fixed = {n: _with(given[n], -1, widths[n]) for n in names}
    rest = {k: v for k, v in kwargs.items() if k not in names}
    return Rerun((fixed["query"], fixed["key"], fixed["value"], *args[3:]), rest,
                 tuple(fixed["query"].shape), width=given["query"].shape[-1])


def _keeps_shape(module: nn.Module, x: torch.Tensor) -> Repair | None:
    """The norms: a wrong declared width changes no shape, so their output is their input's."""
    if isinstance(module, torchapi.NormBase) and x.dim() >= 2 and x.shape[1] != module.num_features:
        return Same(x)
    if isinstance(module, nn.GroupNorm) and x.dim() >= 2 and x.shape[1] != module.num_channels:
        return Same(x)
    if isinstance(module, nn.LayerNorm | nn.RMSNorm):
        shape = tuple(module.normalized_shape)
        if x.dim() >= len(shape) and tuple(x.shape[x.dim() - len(shape):]) != shape:
            return Same(x)
    return None


def for_function(name: str, args: tuple, kwargs: dict) -> Rerun | None:
    """The stand-in for a failing functional op, when it has one. A ``view`` whose shape is
    ``(rows, features)`` is handled by the caller (it continues with a per-sample flatten)."""
    if name in ("matmul", "mm", "bmm") and len(args) >= 2 and _tensors(args[:2]):
        a, b = args[0], args[1]
        if a.dim() >= 1 and b.dim() >= 2 and a.shape[-1] != b.shape[-2]:
            return _second(args, kwargs, _with(b, -2, a.shape[-1]))
        if a.dim() >= 1 and b.dim() == 1 and a.shape[-1] != b.shape[0]:
            return _second(args, kwargs, _with(b, 0, a.shape[-1]))
    if name == "linear" and len(args) >= 2 and _tensors(args[:2]):
        x, weight = args[0], args[1]
        if weight.dim() == 2 and x.dim() >= 1 and x.shape[-1] != weight.shape[1]:
            return _rerun(args, kwargs, _with(x, -1, weight.shape[1]))
    return None


def _second(args: tuple, kwargs: dict, b: torch.Tensor) -> Rerun:
    return Rerun((args[0], b, *args[2:]), kwargs, tuple(args[0].shape))


def _tensors(values: tuple) -> bool:
    return all(isinstance(v, torch.Tensor) for v in values)


def _rerun(args: tuple, kwargs: dict, first: torch.Tensor, how: str = "declared") -> Rerun:
    return Rerun((first, *args[1:]), kwargs, tuple(first.shape), how)


def _with(t: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    return torch.empty(_with_shape(t, dim, size), dtype=t.dtype, device=t.device)


def _with_shape(t: torch.Tensor, dim: int, size: int) -> tuple[int, ...]:
    shape = list(t.shape)
    shape[dim] = size
    return tuple(shape)
