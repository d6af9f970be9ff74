"""``--format markdown``: the table, totals and findings for PR comments and docs."""
from __future__ import annotations

from typing import Any

from shapecheck.render.numbers import count, shapes, size
from shapecheck.render.text import diagnostic
from shapecheck.report import Layer, Report


def render(report: Report, depth: int = 3, **_: Any) -> str:
    origin = f" (`{report.path}`)" if report.path else ""
    lines = [f"### shapecheck: `{report.model}`{origin}, input {report.input_text}, batch {report.batch}", "",
             "| layer | type | input | output | params | MACs |", "|---|---|---|---|---:|---:|"]
    lines += [_row(layer) for layer in report.layers if layer.depth <= depth]
    t = report.totals
    lines += ["", f"**Params** {t.params:,} (trainable {t.trainable_params:,}) · **MACs** {count(t.macs)} "
                  f"for batch {report.batch} · **activation memory** {size(t.activation_bytes)}", ""]
    if report.findings:
        lines += [f"- **{f.severity}** `{diagnostic(f)}`" for f in report.findings]
    else:
        lines.append("No findings.")
    return "\n".join(lines) + "\n"


def _row(layer: Layer) -> str:
    name = "&nbsp;&nbsp;" * layer.depth + f"`{layer.name}`" + (" **(fails)**" if layer.failed else "")
    return (f"| {name} | {_cell(layer.type)} | {shapes(layer.input_shapes) or '--'} "
            f"| {shapes(layer.output_shapes) or '--'} "
            f"| {f'{layer.params:,}' if layer.params else '--'} | {count(layer.macs) if layer.macs else '--'} |")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
