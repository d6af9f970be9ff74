"""What a row is called, and which configuration it records: ``("relu", "F.relu")``,
``("add", "+")``, ``-1, 2880`` for ``x.view(-1, 2880)``, a Conv2d's kernel and stride."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.overrides import resolve_name

from shapecheck import torchapi


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
                   "num_heads", "num_channels", "output_padding", "scale_factor", "size", "mode",
                   "start_dim", "end_dim")


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


def op_names(func: Any) -> tuple[str, str]:
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


def args_text(args: tuple, kwargs: dict) -> str:
    """The non-tensor arguments, e.g. ``-1, 2880`` for ``x.view(-1, 2880)``."""
    parts = [_arg_text(a) for a in args if not isinstance(a, torch.Tensor)]
    parts += [f"{k}={_arg_text(v)}" for k, v in kwargs.items() if not isinstance(v, torch.Tensor)]
    return ", ".join(parts)


def _arg_text(value: Any) -> str:
    if isinstance(value, list | tuple) and any(isinstance(v, torch.Tensor) for v in value):
        return f"[{len(value)} tensors]"
    return repr(tuple(value)) if isinstance(value, torch.Size) else repr(value)
