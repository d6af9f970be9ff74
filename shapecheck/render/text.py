"""The default terminal output: table, totals, then one diagnostic per line."""
from __future__ import annotations

from typing import Any

from shapecheck.render.numbers import count, shapes, size
from shapecheck.report import Finding, Layer, Report
from shapecheck.spec import dtype_name


def render(report: Report, depth: int = 3, show_source: bool = False, explain: bool = False, **_: Any) -> str:
    lines = [_header(report), ""]
    rows = [_row(layer, show_source) for layer in report.layers if layer.depth <= depth]
    head = ("Layer (type)", "Input shape", "Output shape", "Params", "MACs") + (("Source",) if show_source else ())
    lines += _table([head, *rows])
    lines += ["", *_totals(report)]
    if report.output_names:
        lines.append("Outputs: " + ", ".join(f"{name} {shapes((shape,))}"
                                             for name, shape in zip(report.output_names, report.outputs)))
    if explain:
        lines += ["", *_explain(report)]
    if report.notes:
        lines += ["", *(f"note: {note}" for note in report.notes)]
    if report.findings:
        lines += ["", *(diagnostic(f) for f in report.findings)]
    return "\n".join(lines) + "\n"


def render_all(reports: list[Report], **_: Any) -> str:
    """Project mode, as pre-commit shows it: one line per model, then its diagnostics."""
    lines = []
    for report in reports:
        errors = len(report.errors)
        where = f"{report.path}:" if report.path else ""
        lines.append(f"{where}{report.model} (input {report.input_text}): {errors} error(s), "
                     f"{len(report.findings) - errors} other finding(s)")
        lines += ["  " + diagnostic(f) for f in report.findings]
    return "\n".join(lines) + "\n" if lines else ""


def diagnostic(finding: Finding) -> str:
    """flake8's form: ``path:line:col: CODE message``, then where forward calls the layer
    when that is another line than where ``__init__`` defines it."""
    where = f"{finding.location}: " if finding.location else ""
    call = finding.called_at
    called = ""
    if call is not None and finding.location is not None and call.line != finding.location.line:
        called = f" (called at {call if call.path != finding.location.path else f'line {call.line}'})"
    return f"{where}{finding.code} {finding.message}{called}"


def _explain(report: Report) -> list[str]:
    from shapecheck.explain import FORMULA, TRANSPOSED, steps

    found = steps(report)
    width = max((len(s.text) for s in found), default=0)
    lines = [f"Shape arithmetic for input {report.input_text}, per spatial dimension: {FORMULA}",
             "(RF: receptive field in input pixels; stride: input pixels between neighbouring outputs)"]
    if any(layer.type.startswith("ConvTranspose") for layer in report.layers):
        lines.insert(1, f"transposed convolutions: {TRANSPOSED}")
    for step in found:
        field = (f"RF {step.receptive_field}, stride {step.stride}" if step.receptive_field is not None
                 else "RF whole input")
        lines.append(f"  {step.text.ljust(width)}  {field}")
    return lines


def _header(report: Report) -> str:
    origin = f" ({report.path})" if report.path else ""
    return (f"{report.model}{origin}: input {report.input_text}, batch {report.batch}, "
            f"traced on {report.device}")


def _row(layer: Layer, show_source: bool) -> tuple[str, ...]:
    mark = "  !" if layer.failed else ""
    cells = (
        "  " * layer.depth + f"{layer.name} ({layer.type}){mark}",
        shapes(layer.input_shapes),
        shapes(layer.output_shapes) if layer.output_shapes else "--",
        f"{layer.params:,}" if layer.params else "--",
        count(layer.macs) if layer.macs else "--",
    )
    if show_source:
        site = layer.called_at or layer.defined_at
        cells += (f"{site.path}:{site.line}" if site else "",)
    return cells


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    numeric = {3, 4}
    out = []
    for r in rows:
        cells = [c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        out.append("  ".join(cells).rstrip())
    out.insert(1, "-" * len(out[0]))
    return out


def _totals(report: Report) -> list[str]:
    t = report.totals
    dtype = dtype_name(report.inputs[0].dtype) if report.inputs else "float32"
    per_sample = t.macs // report.batch if report.batch else t.macs
    return [
        f"Params: {t.params:,} (trainable {t.trainable_params:,}, non-trainable "
        f"{t.non_trainable_params:,}); buffers: {t.buffers:,}",
        f"MACs: {count(t.macs)} for batch {report.batch} ({count(per_sample)} per sample); "
        f"FLOPs: {count(t.flops)} (2 x MACs)",
        f"Parameter memory: {size(t.param_bytes)} (+{size(t.buffer_bytes)} buffers); "
        f"activation memory: {size(t.activation_bytes)} for batch {report.batch}, {dtype}",
    ]
