"""One formatter per output format; each takes a Report (or, in project mode, several) and returns text."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

FORMATS = ("text", "json", "github", "sarif", "markdown", "html")


def formatter(name: str) -> Callable[..., str]:
    """The renderer of one Report."""
    return _module(name).render


def formatter_all(name: str) -> Callable[..., str]:
    """The renderer of several Reports (project mode): the format's own ``render_all`` where
    one document must hold them all (a JSON array, one SARIF log), else each in turn."""
    module = _module(name)
    return getattr(module, "render_all", None) or (lambda reports, **kw: "".join(module.render(r, **kw) for r in reports))


def _module(name: str) -> Any:
    if name not in FORMATS:
        raise ValueError(f"unknown format {name!r}; choose one of {', '.join(FORMATS)}")
    return importlib.import_module(f"shapecheck.render.{name}")
