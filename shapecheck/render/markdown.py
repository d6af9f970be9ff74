"""``--format markdown``: the table, totals and findings for PR comments and docs."""
from __future__ import annotations

from typing import Any

from shapecheck.render.escape import markdown_code, markdown_text
from shapecheck.render.numbers import count, shapes, size
from shapecheck.render.text import diagnostic
from shapecheck.report import Layer, Report


def render(report: Report, depth: int = 3, **_: Any) -> str:
    origin = f" ({markdown_code(report.path)})" if report.path else ""
    lines = [f"### shapecheck: {markdown_code(report.model)}{origin}, input {markdown_text(report.input_text)}"
             + (f", {report.batch_text}" if report.batch_text else ""), "",
             "| layer | type | input | output | params | MACs |", "|---|---|---|---|---:|---:|"]
    lines += [_row(layer) for layer in report.layers if layer.depth <= depth]
    t = report.totals
    lines += ["", f"**Params** {t.params:,} (trainable {t.trainable_params:,}) · **MACs** {count(t.macs)} "
                  f"for {report.batch_text or 'the input'} · **activation memory** {size(t.activation_bytes)}", ""]
    if report.findings:
        lines += [f"- **{f.severity}** {markdown_code(diagnostic(f))}" for f in report.findings]
    else:
        lines.append("No findings.")
    return "\n".join(lines) + "\n"


def _row(layer: Layer) -> str:
    name = "&nbsp;&nbsp;" * layer.depth + markdown_code(layer.name) + (" **(fails)**" if layer.failed else "")
    return (f"| {name} | {markdown_text(layer.type)} | {shapes(layer.input_shapes) or '--'} "
            f"| {shapes(layer.output_shapes) or '--'} "
            f"| {f'{layer.params:,}' if layer.params else '--'} | {count(layer.macs) if layer.macs else '--'} |")

