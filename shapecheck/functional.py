"""The module twin of a functional op: ``F.avg_pool2d(x, 4)`` is ``AvgPool2d(4)`` to every
rule, ``--explain`` row, receptive field and the size algebra.

The trace reads a call's own argument values (not their text) into the twin's
configuration, with the twin's attribute names: ``kernel_size``, ``stride``, ``padding``,
``in_channels`` (a convolution's from its weight), ``output_size``, ``size``, ``pad``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

_MAX_POOL = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
_AVG_POOL = ("kernel_size", "stride", "padding", "ceil_mode")
_CONV = ("weight", "bias", "stride", "padding", "dilation", "groups")
_CONV_T = ("weight", "bias", "stride", "padding", "output_padding", "groups", "dilation")

# The functional op's name (a row's name) -> (its twin module type, its parameters after the input).
TWINS: dict[str, tuple[str, tuple[str, ...]]] = {
    **{f"max_pool{n}d": (f"MaxPool{n}d", _MAX_POOL) for n in (1, 2, 3)},
    **{f"avg_pool{n}d": (f"AvgPool{n}d", _AVG_POOL) for n in (1, 2, 3)},
    **{f"conv{n}d": (f"Conv{n}d", _CONV) for n in (1, 2, 3)},
    **{f"conv_transpose{n}d": (f"ConvTranspose{n}d", _CONV_T) for n in (1, 2, 3)},
    **{f"adaptive_avg_pool{n}d": (f"AdaptiveAvgPool{n}d", ("output_size",)) for n in (1, 2, 3)},
    **{f"adaptive_max_pool{n}d": (f"AdaptiveMaxPool{n}d", ("output_size",)) for n in (1, 2, 3)},
    "interpolate": ("Upsample", ("size", "scale_factor", "mode", "align_corners")),
    "upsample": ("Upsample", ("size", "scale_factor", "mode", "align_corners")),
    "pad": ("Pad", ("pad", "mode", "value")),
}


def twin_type(kind: str, name: str, type_name: str) -> str:
    """The module type whose arithmetic a row follows: a module row's own type, a functional
    row's twin (``F.max_pool2d`` -> ``MaxPool2d``), or the row's type where it has none."""
    return TWINS[name][0] if kind == "function" and name in TWINS else type_name


def attrs(name: str, args: tuple, kwargs: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The twin's configuration, from the call's arguments after the input."""
    if name not in TWINS:
        return ()
    given = dict(zip(TWINS[name][1], args[1:]))
    given.update((k, v) for k, v in kwargs.items() if k in TWINS[name][1])
    weight = given.pop("weight", None)
    given.pop("bias", None)
    if isinstance(weight, torch.Tensor) and weight.dim() > 2:  # [out, in/groups, *kernel]
        transposed = name.startswith("conv_transpose")
        groups = int(given.get("groups", 1) or 1)
        given["kernel_size"] = tuple(weight.shape[2:])
        given["in_channels"] = weight.shape[0] if transposed else weight.shape[1] * groups
        given["out_channels"] = weight.shape[1] * groups if transposed else weight.shape[0]
        given.setdefault("stride", 1)
    return tuple((key, _plain(key, value)) for key, value in given.items() if not isinstance(value, torch.Tensor))


def _plain(key: str, value: Any) -> Any:
    """As the twin module stores it: lists as tuples (hashable), a scale factor as a float."""
    if key == "scale_factor" and value is not None:
        return tuple(float(v) for v in value) if isinstance(value, tuple | list) else float(value)
    return tuple(value) if isinstance(value, list) else value
