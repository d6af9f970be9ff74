"""shapecheck: per-layer shapes, parameters and MACs of PyTorch models, and shape diagnostics."""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shapecheck.analysis import analyze
    from shapecheck.report import Finding, Layer, Location, Report, Totals
    from shapecheck.spec import InputSpec
    from shapecheck.testing import ShapeCheckFailed, assert_shapes

__all__ = ["analyze", "assert_shapes", "Finding", "InputSpec", "Layer", "Location", "Report",
           "ShapeCheckFailed", "Totals"]
__version__ = "0.1.0"

# Loaded on first use: importing the package (and so the CLI) must not import torch,
# which `shapecheck --help` and `shapecheck zoo` do not need.
_LAZY = {"analyze": "shapecheck.analysis", "Finding": "shapecheck.report", "Layer": "shapecheck.report",
         "Location": "shapecheck.report", "Report": "shapecheck.report", "Totals": "shapecheck.report",
         "InputSpec": "shapecheck.spec", "assert_shapes": "shapecheck.testing",
         "ShapeCheckFailed": "shapecheck.testing"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'shapecheck' has no attribute {name!r}")
