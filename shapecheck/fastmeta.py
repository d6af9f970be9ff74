"""Shape arithmetic for the commonest aten ops, so a meta trace need not run torch's Python refs.

torch computes the meta outputs of relu, add, batch norm, layer norm, cat, mean and addmm
with Python references (``torch._refs``) wrapped in ``_disable_dynamo``. They cost
100-500 us per call, and the first call imports all of ``torch._dynamo`` (1.2-1.8 s,
most of the CLI's start-up). Convolution and max pooling have Python meta kernels too,
whose first call imports ``torch._meta_registrations`` and sympy (0.5-0.8 s). Each rule here covers only the easy, common case (dense
inputs, valid shapes) and returns None otherwise, so the real kernel runs and raises
torch's own error. tests/test_fastmeta.py compares every rule with the real kernel.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from shapecheck import torchapi

Rule = Callable[..., Any]


class MatmulMismatch(RuntimeError):
    """Two matrices whose inner sizes differ. Our words, not a copy of torch's: a release may
    change its text, and nothing reads this one but a person."""

    def __init__(self, left: tuple[int, ...], right: tuple[int, ...]) -> None:
        self.left, self.right = left, right
        super().__init__(f"matrix product of {_text(left)} and {_text(right)}: "
                         f"inner sizes {left[-1]} and {right[0]} differ")


class ChannelMismatch(RuntimeError):
    """A transposed convolution fed other channels than its weight's first dimension."""

    def __init__(self, given: tuple[int, ...], weight: tuple[int, ...]) -> None:
        self.given, self.weight = given, weight
        super().__init__(f"transposed convolution with weight {_text(weight)} expects {weight[0]} input "
                         f"channels but receives {_text(given)} with {given[1]}")


class InputTooSmall(RuntimeError):
    """A convolution whose (padded) input is smaller than its (dilated) kernel."""

    def __init__(self, given: tuple[int, ...], weight: tuple[int, ...]) -> None:
        self.given, self.weight = given, weight
        super().__init__(f"convolution with weight {_text(weight)} needs a larger input than {_text(given)}")


def _text(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def _dense_like(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor | None:
    """An output of ``x``'s shape and memory format, as elementwise kernels make for it.

    Only canonical strides qualify: for ambiguous ones (size-1 dimensions with unusual
    strides) TensorIterator picks a layout this module does not try to predict.
    """
    if x.stride() == _contiguous(x.shape):
        return torch.empty(x.shape, dtype=dtype or x.dtype, device="meta")
    if x.dim() == 4 and x.stride() == _channels_last(x.shape):
        return torch.empty(x.shape, dtype=dtype or x.dtype, device="meta", memory_format=torch.channels_last)
    return None


def _contiguous(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def _channels_last(shape: tuple[int, ...]) -> tuple[int, ...]:
    n, c, h, w = shape
    c, h, w = max(c, 1), max(h, 1), max(w, 1)
    return (h * w * c, 1, w * c, c)


def _accumulator(dtype: torch.dtype) -> torch.dtype:
    """Statistics of half-precision inputs are kept in float32."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _unary(x: Any, *_: Any, **__: Any) -> torch.Tensor | None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        return None
    return _dense_like(x)


def _inplace(x: Any, *_: Any, **__: Any) -> torch.Tensor | None:
    return x if isinstance(x, torch.Tensor) and x.is_floating_point() else None


def _binary(a: Any, b: Any, *_: Any, **__: Any) -> torch.Tensor | None:
    tensors = [t for t in (a, b) if isinstance(t, torch.Tensor)]
    if not tensors or any(t.dim() and t.stride() != _contiguous(t.shape) for t in tensors):
        return None  # broadcasting over strided layouts follows TensorIterator's rules: let torch decide
    shape = _broadcast(*(tuple(t.shape) for t in tensors))
    if shape is None:
        return None
    dtype = torch.result_type(a, b)
    if not dtype.is_floating_point:
        return None
    return torch.empty(shape, dtype=dtype, device="meta")


def _binary_inplace(a: Any, b: Any, *_: Any, **__: Any) -> torch.Tensor | None:
    """``a += b``: ``a`` itself, when ``b`` broadcasts to its shape and the result fits its dtype."""
    if not isinstance(a, torch.Tensor) or not a.is_floating_point():
        return None
    if isinstance(b, torch.Tensor) and _broadcast(tuple(a.shape), tuple(b.shape)) != tuple(a.shape):
        return None
    return a if torch.can_cast(torch.result_type(a, b), a.dtype) else None


def _addmm(bias: torch.Tensor, m1: torch.Tensor, m2: torch.Tensor, *_: Any, **__: Any) -> torch.Tensor | None:
    if m1.dim() != 2 or m2.dim() != 2 or not m1.is_floating_point() or len({bias.dtype, m1.dtype, m2.dtype}) != 1:
        return None
    if m1.shape[1] != m2.shape[0]:
        # torch's own meta kernel would import torch._dynamo (1.5 s) just to raise this.
        raise MatmulMismatch(tuple(m1.shape), tuple(m2.shape))
    out = (m1.shape[0], m2.shape[1])
    if _broadcast(tuple(bias.shape), out) != out:
        return None
    return torch.empty(out, dtype=m1.dtype, device="meta")


def _batch_norm(x: torch.Tensor, weight: Any, bias: Any = None, mean: Any = None, var: Any = None,
                training: bool = False, *_: Any, **__: Any) -> tuple | None:
    if x.dim() < 2 or not x.is_floating_point() or (weight is not None and weight.shape != (x.shape[1],)) \
            or (training and x.numel() <= x.shape[1]):  # one value per channel: torch's own error
        return None
    out = _dense_like(x)
    if out is None:
        return None
    stats = torch.empty((x.shape[1],), dtype=_accumulator(x.dtype), device="meta")
    # torch.empty_like would run a Python reference on meta
    return out, stats, torch.empty((x.shape[1],), dtype=stats.dtype, device="meta")


def _layer_norm(x: torch.Tensor, shape: list[int], weight: Any = None, *_: Any, **__: Any) -> tuple | None:
    n = len(shape)
    # torch makes the input contiguous first, so a permuted input gives contiguous outputs. One
    # that is_contiguous() with odd strides on size-1 dimensions keeps them: torch decides.
    if not x.is_floating_point() or (x.is_contiguous() and x.stride() != _contiguous(x.shape)) \
            or tuple(x.shape[x.dim() - n:]) != tuple(shape) \
            or (weight is not None and tuple(weight.shape) != tuple(shape)):
        return None
    stats = (*x.shape[: x.dim() - n], *(1 for _ in shape))
    kept = _accumulator(x.dtype)
    return (torch.empty(x.shape, dtype=x.dtype, device="meta"),
            torch.empty(stats, dtype=kept, device="meta"), torch.empty(stats, dtype=kept, device="meta"))


def _reduce(x: torch.Tensor, dims: Any = None, keepdim: bool = False, *, dtype: Any = None, **__: Any) -> Any:
    if not x.is_floating_point() or x.stride() != _contiguous(x.shape) or dtype is not None or not dims:
        return None
    axes = {d % x.dim() for d in dims}
    shape = [1 if i in axes else s for i, s in enumerate(x.shape)] if keepdim else \
        [s for i, s in enumerate(x.shape) if i not in axes]
    return torch.empty(shape, dtype=x.dtype, device="meta")


def _cat(tensors: list[torch.Tensor], dim: int = 0, **__: Any) -> torch.Tensor | None:
    if not tensors or any(t.dim() == 0 or t.stride() != _contiguous(t.shape) for t in tensors) \
            or len({t.dtype for t in tensors}) != 1 or len({t.dim() for t in tensors}) != 1:
        return None
    d = dim % tensors[0].dim()
    rest = {tuple(s for i, s in enumerate(t.shape) if i != d) for t in tensors}
    if len(rest) != 1:
        return None
    shape = list(tensors[0].shape)
    shape[d] = sum(t.shape[d] for t in tensors)
    return torch.empty(shape, dtype=tensors[0].dtype, device="meta")


def _softmax(x: torch.Tensor, dim: int, half_to_float: Any = False, *, dtype: Any = None,
             **__: Any) -> torch.Tensor | None:
    # _softmax(x, dim, half_to_float) and _safe_softmax(x, dim, dtype=None)
    if not x.is_floating_point() or dtype is not None or half_to_float is True:
        return None
    return _dense_like(x)


def _convolution(x: torch.Tensor, weight: torch.Tensor, bias: Any, stride: list[int], padding: list[int],
                 dilation: list[int], transposed: bool, output_padding: list[int], groups: int,
                 **__: Any) -> torch.Tensor | None:
    rank = weight.dim() - 2
    if transposed and x.dim() == weight.dim() and x.shape[1] != weight.shape[0]:
        # torch's meta kernel accepts this (its CPU and CUDA kernels do not): say it here.
        raise ChannelMismatch(tuple(x.shape), tuple(weight.shape))
    if x.dim() != weight.dim() or rank < 1:
        return None
    sizes = []
    for n, k, st, p, d, op in zip(x.shape[2:], weight.shape[2:], _each(stride, rank), _each(padding, rank),
                                  _each(dilation, rank), _each(output_padding, rank)):
        if transposed and op >= max(st, d):
            return None  # torch's own "output padding must be smaller than either stride or dilation"
        out = (n - 1) * st - 2 * p + d * (k - 1) + op + 1 if transposed else (n + 2 * p - d * (k - 1) - 1) // st + 1
        if out < 1 and transposed:
            return None  # torch decides what an empty transposed output is
        if out < 1:
            # Real kernels raise; the meta kernel of torch 2.6 and older returns an empty map.
            raise InputTooSmall(tuple(x.shape), tuple(weight.shape))
        sizes.append(out)
    receives = weight.shape[0] if transposed else weight.shape[1] * groups
    if not x.is_floating_point() or x.stride() != _contiguous(x.shape) or weight.stride() != _contiguous(weight.shape) \
            or x.shape[1] != receives or weight.shape[0] % groups \
            or (bias is not None and tuple(bias.shape) != (_out_channels(weight, transposed, groups),)) \
            or x.dtype != weight.dtype:
        return None
    return torch.empty((x.shape[0], _out_channels(weight, transposed, groups), *sizes), dtype=x.dtype,
                       device="meta")


def _out_channels(weight: torch.Tensor, transposed: bool, groups: int) -> int:
    return weight.shape[1] * groups if transposed else weight.shape[0]


def _max_pool2d(x: torch.Tensor, kernel: list[int], stride: list[int] | None = None, padding: Any = 0,
                dilation: Any = 1, ceil_mode: bool = False, **__: Any) -> tuple | None:
    if x.dim() != 4 or not x.is_floating_point() or x.stride() != _contiguous(x.shape):
        return None
    ks, ss = _each(kernel, 2), _each(stride or kernel, 2)
    ps, ds = _each(padding, 2), _each(dilation, 2)
    sizes = []
    for n, k, st, p, d in zip(x.shape[2:], ks, ss, ps, ds):
        if p > k // 2 or k < 1 or st < 1:
            return None
        out = _pool_out(n, k, st, p, d, ceil_mode)
        if out < 1:
            return None
        sizes.append(out)
    shape = (*x.shape[:2], *sizes)
    return (torch.empty(shape, dtype=x.dtype, device="meta"),
            torch.empty(shape, dtype=torch.int64, device="meta"))


def _pool_out(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    # PyTorch's pooling_output_shape, ceil_mode's last-window rule included.
    span = n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = span // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _broadcast(*shapes: tuple[int, ...]) -> tuple[int, ...] | None:
    """NumPy broadcasting, or None when the shapes do not broadcast. (torch.broadcast_shapes
    would import sympy, 0.4 s, on its first call.)"""
    rank = max(len(s) for s in shapes)
    out = []
    for sizes in zip(*((1,) * (rank - len(s)) + s for s in shapes)):
        wide = {n for n in sizes if n != 1}
        if len(wide) > 1:
            return None
        out.append(wide.pop() if wide else 1)
    return tuple(out)


def _each(value: Any, rank: int) -> list[int]:
    values = [value] if isinstance(value, int) else list(value)
    return values * rank if len(values) == 1 else values


_FAMILIES: tuple[tuple[Rule, tuple[str, ...]], ...] = (
    (_unary, ("relu", "gelu", "hardsigmoid", "sigmoid", "silu", "tanh", "hardswish")),
    (_inplace, ("relu_", "hardswish_", "silu_", "hardsigmoid_", "hardtanh_")),
    (_binary, ("add.Tensor", "sub.Tensor", "mul.Tensor", "div.Tensor", "mul.Scalar", "add.Scalar")),
    (_binary_inplace, ("add_.Tensor", "sub_.Tensor", "mul_.Tensor", "div_.Tensor", "add_.Scalar",
                       "mul_.Scalar")),
    (_addmm, ("addmm",)),
    (_convolution, ("convolution",)),
    (_max_pool2d, ("max_pool2d_with_indices",)),
    (_batch_norm, ("native_batch_norm",)),
    (_layer_norm, ("native_layer_norm",)),
    (_reduce, ("mean.dim",)),
    (_cat, ("cat",)),
    (_softmax, ("_softmax", "_safe_softmax")),  # _safe_softmax: torch 2.5 and later
)
# Only the ops this torch release has: the others run torch's own kernels.
RULES: dict[Any, Rule] = {op: rule for rule, names in _FAMILIES for op in torchapi.aten_ops(names)}


def outputs(func: Any, args: tuple, kwargs: dict) -> Any:
    """The op's meta outputs by shape arithmetic, or None when the real kernel must run."""
    rule = RULES.get(func)
    if rule is None or not all(t.is_meta for t in _tensors(args)):
        return None
    try:
        return rule(*args, **kwargs)
    except (TypeError, IndexError, ValueError):
        return None  # an unusual signature: the real kernel knows best
    # A RuntimeError is the shape error torch itself would raise, in its words.


def _tensors(args: tuple) -> list[torch.Tensor]:
    found = []
    for a in args:
        if isinstance(a, torch.Tensor):
            found.append(a)
        elif isinstance(a, list | tuple):
            found += [t for t in a if isinstance(t, torch.Tensor)]
    return found
