"""``--format github``: GitHub Actions workflow commands, one annotation per finding."""
from __future__ import annotations

from typing import Any

from shapecheck.report import Finding, Report
from shapecheck.rules.registry import RULES

_LEVELS = {"error": "error", "warning": "warning", "info": "notice"}


def render(report: Report, **_: Any) -> str:
    return "".join(annotation(f) + "\n" for f in report.findings)


def annotation(finding: Finding) -> str:
    rule = RULES.get(finding.code)
    props = {"title": f"{finding.code} {rule.name}" if rule else finding.code}
    if finding.location is not None:
        props = {"file": finding.location.path, "line": str(finding.location.line),
                 "col": str(finding.location.column), **props}
    listed = ",".join(f"{key}={_property(value)}" for key, value in props.items())
    return f"::{_LEVELS[finding.severity]} {listed}::{_data(finding.message)}"


def _data(text: str) -> str:
    # The escaping GitHub's runner applies to workflow command data.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")
