"""The default terminal output: table, totals, then one diagnostic per line."""
from __future__ import annotations

from typing import Any

from shapecheck.render.numbers import count, shapes, size
from shapecheck.render.escape import one_line, terminal
from shapecheck.report import Finding, Layer, Report
from shapecheck.spec import dtype_name


def render(report: Report, depth: int = 3, show_source: bool = False, explain: bool = False,
           functions: bool = True, **_: Any) -> str:
    lines = [_header(report), ""]
    shown = [layer for layer in report.layers if layer.depth <= depth and (functions or layer.kind == "module")]
    rows = [_row(layer, show_source, times) for layer, times in _runs(shown)]
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
    return terminal("\n".join(lines) + "\n")


def render_all(reports: list[Report], **_: Any) -> str:
    """Project mode, as pre-commit shows it: one line per model, then its diagnostics."""
    lines = []
    for report in reports:
        errors = len(report.errors)
        where = f"{report.path}:" if report.path else ""
        lines.append(f"{where}{report.model} (input {report.input_text}): {errors} error(s), "
                     f"{len(report.findings) - errors} other finding(s)")
        lines += ["  " + diagnostic(f) for f in report.findings]
    return terminal("\n".join(lines) + "\n") if lines else ""


def diagnostic(finding: Finding) -> str:
    """flake8's form: ``path:line:col: CODE message``, then where forward calls the layer
    when that is another line than where ``__init__`` defines it."""
    where = f"{finding.location}: " if finding.location else ""
    call = finding.called_at
    called = ""
    if call is not None and finding.location is not None and call.line != finding.location.line:
        called = f" (called at {call if call.path != finding.location.path else f'line {call.line}'})"
    return one_line(f"{where}{finding.code} {finding.message}{called}")


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
    batch = f", {report.batch_text}" if report.batch_text else ""
    return f"{report.model}{origin}: input {report.input_text}{batch}, traced on {report.device}"


_CELL = 60  # characters: a row with many outputs (an RNN's states, a detector's heads) is cut here


def _runs(layers: list[Layer], longest: int = 4) -> list[tuple[Layer, int]]:
    """Functional rows that a loop repeats, shown once with a count: twelve ``grid_sample``
    calls read as ``grid_sample x12``, and a loop body of ``relu`` then ``+`` as each x12."""
    runs: list[tuple[Layer, int]] = []
    i = 0
    while i < len(layers):
        period, times = _repeats(layers, i, longest)
        runs += [(layer, times) for layer in layers[i:i + period]]
        i += period * times
    return runs


def _repeats(layers: list[Layer], start: int, longest: int) -> tuple[int, int]:
    """(period, times) of the block of functional rows from ``start`` that repeats the most."""
    best = (1, 1)
    for period in range(1, longest + 1):
        block = layers[start:start + period]
        if len(block) < period or not all(_plain_call(layer) for layer in block):
            break
        times = 1
        while all(_same_call(a, b) for a, b in zip(block, layers[start + times * period:start + (times + 1) * period])) \
                and start + (times + 1) * period <= len(layers):
            times += 1
        if times > 1 and period * times > best[0] * best[1]:
            best = (period, times)
    return best


def _plain_call(layer: Layer) -> bool:
    return layer.kind == "function" and not layer.failed


def _same_call(a: Layer, b: Layer) -> bool:
    return _plain_call(a) and _plain_call(b) and (a.name, a.type, a.depth, a.called_at, a.input_shapes,
                                                  a.output_shapes) == (b.name, b.type, b.depth, b.called_at,
                                                                       b.input_shapes, b.output_shapes)


def _cell(text: str) -> str:
    if len(text) <= _CELL:
        return text
    return text[:_CELL - 8].rsplit("], ", 1)[0] + "], ... " + f"({text.count('[')} shapes)"


def _row(layer: Layer, show_source: bool, times: int = 1) -> tuple[str, ...]:
    mark = "  !" if layer.failed else ""
    repeat = f" x{times}" if times > 1 else ""
    cells = (
        "  " * layer.depth + f"{layer.name} ({layer.type}){repeat}{mark}",
        _cell(shapes(layer.input_shapes)),
        _cell(shapes(layer.output_shapes)) if layer.output_shapes else "--",
        f"{layer.params:,}" if layer.params else "--",
        count(layer.macs * times) if layer.macs else "--",
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
    batch = f" for {report.batch_text}" if report.batch_text else ""
    return [
        f"Params: {t.params:,} (trainable {t.trainable_params:,}, non-trainable "
        f"{t.non_trainable_params:,}); buffers: {t.buffers:,}",
        f"MACs: {count(t.macs)}{batch}" + (f" ({count(per_sample)} per sample)" if batch else "")
        + f"; FLOPs: {count(t.flops)} (2 x MACs)",
        f"Parameter memory: {size(t.param_bytes)} (+{size(t.buffer_bytes)} buffers); "
        f"activation memory: {size(t.activation_bytes)}{batch}, {dtype}",
    ]
