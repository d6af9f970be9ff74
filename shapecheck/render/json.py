"""``--format json``: the stable schema documented in docs/json-schema.md, and shipped as a
JSON Schema file in the package (``shapecheck/schema/report.schema.json``, see ``SCHEMA_FILE``)."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from shapecheck.report import Finding, Layer, Location, Report
from shapecheck.rules.registry import RULES
from shapecheck.spec import InputSpec, dtype_name

SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema" / "report.schema.json"


def render(report: Report, **_: Any) -> str:
    return json.dumps(to_dict(report), indent=2) + "\n"


def render_all(reports: list[Report], **_: Any) -> str:
    """Project mode: a JSON array, one object per model, each as SCHEMA_FILE describes."""
    return json.dumps([to_dict(report) for report in reports], indent=2) + "\n"


def to_dict(report: Report) -> dict[str, Any]:
    t = report.totals
    return {
        "schema_version": SCHEMA_VERSION,
        "model": {"name": report.model, "path": report.path},
        "input": [_input(spec) for spec in report.inputs],
        "batch": report.batch,
        "device": report.device,
        "outputs": [list(s) for s in report.outputs],
        "output_names": list(report.output_names),
        "layers": [_layer(layer) for layer in report.layers],
        "totals": {
            "params": t.params, "trainable_params": t.trainable_params,
            "non_trainable_params": t.non_trainable_params, "buffers": t.buffers,
            "macs": t.macs, "flops": t.flops, "param_bytes": t.param_bytes,
            "buffer_bytes": t.buffer_bytes, "activation_bytes": t.activation_bytes,
        },
        "findings": [_finding(f) for f in report.findings],
        "notes": list(report.notes),
    }


def _input(spec: InputSpec) -> dict[str, Any]:
    if spec.container != "tensor":
        return {"container": spec.container, "name": spec.name, "items": [_input(item) for item in spec.items]}
    return {"shape": list(spec.shape), "dtype": dtype_name(spec.dtype), "name": spec.name, "exact": spec.exact,
            "batch_dim": None if spec.exact else spec.batch_dim}


def _layer(layer: Layer) -> dict[str, Any]:
    return {
        "index": layer.index, "name": layer.name, "type": layer.type, "kind": layer.kind,
        "depth": layer.depth, "parent": layer.parent,
        "input_shapes": [list(s) for s in layer.input_shapes],
        "output_shapes": [list(s) for s in layer.output_shapes],
        "params": layer.params, "macs": layer.macs, "failed": layer.failed,
        "config": {key: list(value) if isinstance(value, tuple) else value for key, value in layer.attrs},
        "defined_at": _location(layer.defined_at), "called_at": _location(layer.called_at),
    }


def _finding(finding: Finding) -> dict[str, Any]:
    loc = finding.location
    data: dict[str, Any] = {
        "code": finding.code,
        "name": RULES[finding.code].name if finding.code in RULES else None,
        "severity": finding.severity, "message": finding.message,
        "path": loc.path if loc else None, "line": loc.line if loc else None,
        "column": loc.column if loc else None, "layer": finding.layer,
        "called_at": _location(finding.called_at),
        "hint": finding.hint, "fix": asdict(finding.fix) if finding.fix else None,
    }
    return data


def _location(loc: Location | None) -> dict[str, Any] | None:
    return {"path": loc.path, "line": loc.line, "column": loc.column} if loc else None
