"""Sliding-window arithmetic of convolutions and pooling, one spatial dimension at a time.

``out = floor((in + 2*p - d*(k-1) - 1) / s) + 1``, as PyTorch documents it for Conv2d and
MaxPool2d, and for transposed convolutions (ConvTranspose2d's documentation)
``out = (in - 1)*s - 2*p + d*(k-1) + output_padding + 1``. --explain prints them, the
dropped-pixels rule and the sizes solver use them.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shapecheck.functional import twin_type
from shapecheck.report import Layer

# Layers whose attrs describe a sliding window; adaptive pools choose their own windows.
_WINDOWED = ("Conv", "MaxPool", "AvgPool", "LPPool")


@dataclass(frozen=True)
class Window:
    """One spatial dimension of a conv or pooling layer."""

    kernel: int
    stride: int
    padding: int
    dilation: int = 1
    ceil_mode: bool = False
    transposed: bool = False
    output_padding: int = 0

    @property
    def span(self) -> int:
        """Input pixels one window covers: ``d*(k-1) + 1``."""
        return self.dilation * (self.kernel - 1) + 1

    def out(self, size: int) -> int:
        if self.transposed:
            return (size - 1) * self.stride - 2 * self.padding + self.span + self.output_padding
        rounding = math.ceil if self.ceil_mode else math.floor
        n = rounding((size + 2 * self.padding - self.span) / self.stride) + 1
        if self.ceil_mode and (n - 1) * self.stride >= size + self.padding:
            n -= 1  # PyTorch: the last window must start inside the input or the left padding
        return n

    def dropped(self, size: int) -> int:
        """Input pixels (not padding) that no window reads: 75 -> 37 with k=s=2 drops 1."""
        n = self.out(size)
        if self.transposed or n < 1 or self.span < self.stride:  # a transposed conv spreads every pixel
            return 0  # a window smaller than its stride skips pixels by design (1x1 stride 2)
        covered = (n - 1) * self.stride + self.span - self.padding
        return max(0, size - covered)

    def formula(self, size: int) -> str:
        if self.transposed:
            span = str(self.kernel - 1) if self.dilation == 1 else f"{self.dilation}*({self.kernel}-1)"
            return (f"{size} -> ({size} - 1)*{self.stride} - 2*{self.padding} + {span} + {self.output_padding} + 1 "
                    f"= {self.out(size)}")
        if self.kernel == self.stride and not self.padding and self.dilation == 1 and not self.ceil_mode:
            return f"{size} -> floor({size} / {self.stride}) = {self.out(size)}"
        span = str(self.kernel) if self.dilation == 1 else f"{self.dilation}*({self.kernel}-1) - 1"
        rounding = "ceil" if self.ceil_mode else "floor"
        return (f"{size} -> {rounding}(({size} + 2*{self.padding} - {span}) / {self.stride}) + 1 "
                f"= {self.out(size)}")

    def describe(self) -> str:
        parts = [f"k={self.kernel}", f"s={self.stride}", f"p={self.padding}"]
        if self.dilation != 1:
            parts.append(f"d={self.dilation}")
        if self.output_padding:
            parts.append(f"output_padding={self.output_padding}")
        return ", ".join(parts)


def windows(layer: Layer) -> tuple[Window, ...] | None:
    """The layer's window in each spatial dimension, or None when it has no fixed window. A
    functional op has its module twin's: ``F.max_pool2d(x, 2)`` is ``MaxPool2d(2)``."""
    kind = twin_type(layer.kind, layer.name, layer.type)
    if not kind.startswith(_WINDOWED):
        return None
    rank = spatial_rank(kind, layer.input_shapes[0] if layer.input_shapes else None)
    return windows_from(kind, dict(layer.attrs), rank)


def windows_from(type_name: str, attrs: Mapping[str, Any], rank: int | None) -> tuple[Window, ...] | None:
    if not type_name.startswith(_WINDOWED) or attrs.get("kernel_size") is None or not rank:
        return None
    padding = attrs.get("padding", 0)
    if isinstance(padding, str):  # "same" keeps the size, "valid" is no padding
        if padding != "valid":
            return None
        padding = 0
    transposed = type_name.startswith("ConvTranspose")
    return tuple(
        Window(k, s, p, d, bool(attrs.get("ceil_mode", False)), transposed, op)
        for k, s, p, d, op in zip(_per_dim(attrs["kernel_size"], rank),
                                  _per_dim(attrs.get("stride") or attrs["kernel_size"], rank),
                                  _per_dim(padding, rank), _per_dim(attrs.get("dilation", 1), rank),
                                  _per_dim(attrs.get("output_padding", 0), rank))
    )


def spatial_rank(type_name: str, shape: tuple[int, ...] | None) -> int | None:
    """2 for Conv2d; for unnumbered types, the input's rank minus batch and channels."""
    digits = [c for c in type_name if c.isdigit()]
    if digits:
        return int(digits[-1])
    return len(shape) - 2 if shape and len(shape) > 2 else None


def _per_dim(value: object, rank: int) -> tuple[int, ...]:
    if isinstance(value, tuple | list):
        return tuple(int(v) for v in value) if len(value) == rank else (int(value[0]),) * rank
    return (int(value),) * rank  # type: ignore[call-overload]
