"""What a block of the HTML picture shows on hover: one JSON-ready record per report row.

The records carry text already worked out by the analysis modules (``explain`` for the
arithmetic, ``receptive`` for the receptive field); this module only picks and names it.
Keys are short because RAFT has 1,736 rows and the page carries them all.
"""
from __future__ import annotations

from typing import Any

from shapecheck.explain import arithmetic_line as arithmetic
from shapecheck.receptive import describe, receptive_fields
from shapecheck.report import Finding, Layer, Report

INPUT = -1  # a source that is the model's own input (the picture draws an input block)


def rows(report: Report) -> list[dict[str, Any]]:
    fields = receptive_fields(report.layers)
    attached = finding_rows(report)
    inputs = set(report.input_shapes)
    return [_row(layer, describe(fields.get(layer.index)) if layer.is_leaf else None,
                 attached.get(layer.index, []), inputs) for layer in report.layers]


def _row(layer: Layer, field: str | None, findings: list[int], inputs: set[tuple[int, ...]]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "n": layer.name, "t": layer.type, "k": layer.kind[0], "d": layer.depth,
        "i": [list(s) for s in layer.input_shapes], "o": [list(s) for s in layer.output_shapes],
        "p": layer.params, "m": layer.macs, "s": _sources(layer, inputs),
    }
    optional = {
        "x": layer.failed, "c": config(layer), "a": arithmetic(layer) if layer.is_leaf else None,
        "rf": field, "at": _where(layer), "f": findings,
    }
    record.update({key: value for key, value in optional.items() if value})
    return record


def config(layer: Layer) -> str:
    """``in_channels=3, out_channels=10, kernel_size=(5, 5), ...``; a function's arguments as called."""
    if layer.attrs and layer.kind == "module":  # a function's attrs are its twin's, read from these
        return ", ".join(f"{key}={value!r}" for key, value in layer.attrs)
    return layer.args


def _sources(layer: Layer, inputs: set[tuple[int, ...]]) -> list[int | None]:
    """The producing row of each input; INPUT where an untraced input has the model input's shape."""
    return [source if source is not None else (INPUT if shape in inputs else None)
            for source, shape in zip(layer.input_sources, layer.input_shapes)]


def _where(layer: Layer) -> str | None:
    site = layer.called_at or layer.defined_at
    return f"{site.path}:{site.line}" if site else None


def finding_rows(report: Report) -> dict[int, list[int]]:
    """Finding positions by the row they are about: the failing row of that name first,
    then one called or defined where the finding points."""
    attached: dict[int, list[int]] = {}
    for position, finding in enumerate(report.findings):
        row = _row_of(finding, report.layers)
        if row is not None:
            attached.setdefault(row, []).append(position)
    return attached


def _row_of(finding: Finding, layers: tuple[Layer, ...]) -> int | None:
    named = [layer for layer in layers if finding.layer and layer.name == finding.layer]
    if not named:
        return None
    sites = {finding.location, finding.called_at} - {None}

    def fit(layer: Layer) -> tuple[bool, bool]:
        return layer.failed, bool(sites & {layer.called_at, layer.defined_at})

    return max(named, key=fit).index
