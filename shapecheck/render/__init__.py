"""One formatter per output format; each takes a Report and returns text."""
from __future__ import annotations

import importlib
from collections.abc import Callable

FORMATS = ("text", "json", "github", "sarif", "markdown")


def formatter(name: str) -> Callable[..., str]:
    if name not in FORMATS:
        raise ValueError(f"unknown format {name!r}; choose one of {', '.join(FORMATS)}")
    return importlib.import_module(f"shapecheck.render.{name}").render
