"""``# shapecheck: noqa`` and ``# shapecheck: noqa: SHP101,SHP102`` on a finding's source line."""
from __future__ import annotations

import linecache
import re
from collections.abc import Iterable

from shapecheck.report import Finding, Location

_NOQA = re.compile(r"#\s*shapecheck:\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.I)


def suppressed(finding: Finding) -> bool:
    """True when the line that defines or calls the finding's layer carries a matching noqa."""
    return any(_matches(line, finding.code) for line in _lines(finding.location, finding.called_at))


def keep(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    return tuple(f for f in findings if not suppressed(f))


def _lines(*locations: Location | None) -> Iterable[str]:
    for location in locations:
        if location is not None:
            yield linecache.getline(location.path, location.line)


def _matches(line: str, code: str) -> bool:
    match = _NOQA.search(line)
    if match is None:
        return False
    codes = match.group("codes")
    # Like flake8, a bare noqa silences everything and a listed code also covers its prefix.
    return codes is None or any(code.startswith(c.upper()) for c in re.split(r"[,\s]+", codes) if c)
