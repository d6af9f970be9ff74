"""One finding per rule and source line: a helper called ten times is one mistake, not ten.

A textbook U-Net builds its blocks with ``def double_conv(...)``; a bias before BatchNorm in
it is reported once, at the helper's line, with how many layers it made and their names.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from shapecheck.report import Finding

_SHOWN = 4  # names listed before "..."
FOLDED = "layers made at this line"


def folded(finding: Finding) -> bool:
    """Whether ``finding`` stands for several layers made at its line."""
    return finding.message.endswith("]") and FOLDED in finding.message


def grouped(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """``findings`` in order, those of one rule at one line folded into the first of them."""
    groups: dict[tuple, list[Finding]] = {}
    for finding in findings:
        where = (finding.location.path, finding.location.line) if finding.location else (id(finding),)
        groups.setdefault((finding.code, *where), []).append(finding)
    return tuple(_fold(group) for group in groups.values())


def _fold(group: list[Finding]) -> Finding:
    first = group[0]
    if len(group) == 1:
        return first
    names = [f.layer for f in group if f.layer]
    shown = ", ".join(names[:_SHOWN]) + (", ..." if len(names) > _SHOWN else "")
    fixes = {f.fix for f in group}
    same_fix = len(fixes) == 1
    hint = first.hint if same_fix else "not fixed automatically: the layers made at this line need different values"
    return replace(first, message=f"{first.message} [{len(group)} {FOLDED}: {shown}]",
                   fix=first.fix if same_fix else None, hint=hint)
