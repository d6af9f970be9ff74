"""Rules turn a trace into findings. Each family lives in its own module."""
from __future__ import annotations

from shapecheck.rules.registry import RULES, Rule, selected

__all__ = ["RULES", "Rule", "selected"]
