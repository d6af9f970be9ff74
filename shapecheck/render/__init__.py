"""One formatter per output format; each takes a Report and returns text."""
from __future__ import annotations

from collections.abc import Callable


def formatter(name: str) -> Callable[..., str]:
    if name == "json":
        from shapecheck.render.json import render
    else:
        from shapecheck.render.text import render
    return render

