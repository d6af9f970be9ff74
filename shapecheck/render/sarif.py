"""``--format sarif``: SARIF 2.1.0, as GitHub code scanning and other tools read it."""
from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from shapecheck.report import Finding, Report
from shapecheck.rules.registry import RULES

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVELS = {"error": "error", "warning": "warning", "info": "note"}


def render(report: Report, **_: Any) -> str:
    return json.dumps(to_dict(report), indent=2) + "\n"


def render_all(reports: list[Report], **_: Any) -> str:
    """Project mode: one SARIF log with one run per model."""
    logs = [to_dict(report) for report in reports]
    merged = {"$schema": SCHEMA, "version": "2.1.0", "runs": [run for log in logs for run in log["runs"]]}
    return json.dumps(merged, indent=2) + "\n"


def to_dict(report: Report) -> dict[str, Any]:
    codes = sorted(RULES)
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "shapecheck", "version": _version(),
                "rules": [_rule(code) for code in codes],
            }},
            "results": [_result(f, codes) for f in report.findings],
            "properties": {"model": report.model, "input": report.input_text, "batch": report.batch},
        }],
    }


def _rule(code: str) -> dict[str, Any]:
    rule = RULES[code]
    return {
        "id": code, "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.what},
        "help": {"text": f"{rule.why}\n\nUse instead:\n{rule.use_instead}"},
        "defaultConfiguration": {"level": _LEVELS[rule.severity], "enabled": rule.enabled},
    }


def _result(finding: Finding, codes: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {"ruleId": finding.code, "level": _LEVELS[finding.severity],
                              "message": {"text": finding.message}}
    if finding.code in codes:
        result["ruleIndex"] = codes.index(finding.code)
    if finding.location is not None:
        location: dict[str, Any] = {"physicalLocation": {
            "artifactLocation": {"uri": finding.location.path.replace("\\", "/")},
            "region": {"startLine": finding.location.line, "startColumn": finding.location.column},
        }}
        if finding.layer:
            location["logicalLocations"] = [{"name": finding.layer, "kind": "member"}]
        result["locations"] = [location]
    if finding.fix is not None:
        fix = finding.fix
        result["fixes"] = [{"description": {"text": str(fix)}, "artifactChanges": [{
            "artifactLocation": {"uri": fix.path.replace("\\", "/")},
            "replacements": [{"deletedRegion": {"startLine": fix.line, "startColumn": fix.column,
                                                "endLine": fix.end_line, "endColumn": fix.end_column},
                              "insertedContent": {"text": fix.new}}],
        }]}]
    return result


def _version() -> str:
    try:
        return version("torch-shapecheck")
    except PackageNotFoundError:
        return "0+unknown"
