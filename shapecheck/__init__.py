"""shapecheck: per-layer shapes, parameters and MACs of PyTorch models, and shape diagnostics."""
from __future__ import annotations

from shapecheck.analyze import analyze
from shapecheck.report import Finding, Layer, Location, Report, Totals
from shapecheck.spec import InputSpec

__all__ = ["analyze", "Finding", "InputSpec", "Layer", "Location", "Report", "Totals"]
__version__ = "0.1.0"
