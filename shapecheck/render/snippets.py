"""Source lines around a finding, for the HTML report (the terminal user has an editor open)."""
from __future__ import annotations

import linecache

from shapecheck.report import Location


def around(location: Location | None, context: int = 2) -> list[tuple[int, str]]:
    """``(number, text)`` of the lines ``context`` either side of ``location``; empty when
    the file cannot be read (a model built in a notebook cell has no file to quote)."""
    if location is None:
        return []
    lines = linecache.getlines(location.path)
    if not 0 < location.line <= len(lines):
        return []
    first = max(1, location.line - context)
    last = min(len(lines), location.line + context)
    return [(number, lines[number - 1].rstrip("\r\n")) for number in range(first, last + 1)]


def line(location: Location | None) -> str | None:
    """The one source line at ``location``, stripped, or None."""
    found = dict(around(location, 0))
    return found[location.line].strip() if location is not None and location.line in found else None
