"""``--format html``: one self-contained page, the shape-flow picture, the layer table, the
totals and the findings with their source.

No network, no CDN, no graphviz: the style and the script that draws the picture are
inlined from ``assets/``, the data as JSON. Without JavaScript (an untrusted notebook) the
table, totals and findings still read; only the picture needs the script. The same
fragment is what ``Report._repr_html_`` shows in Jupyter.
"""
from __future__ import annotations

import hashlib
import json
from functools import cache
from html import escape
from importlib import resources
from typing import Any

from shapecheck.render import flow, hover, snippets
from shapecheck.render.numbers import count, shapes, size
from shapecheck.report import Finding, Layer, Report
from shapecheck.spec import dtype_name

# Tables longer than this open at depth 2; every row is still there, a click away.
_OPEN_ROWS = 200


def render(report: Report, **_: Any) -> str:
    origin = f" ({report.path})" if report.path else ""
    return _page(f"shapecheck: {report.model}{origin}", fragment(report))


def render_all(reports: list[Report], **_: Any) -> str:
    """Project mode: one page, one section per model."""
    return _page(f"shapecheck: {len(reports)} model(s)", "\n".join(fragment(report) for report in reports))


def fragment(report: Report) -> str:
    """The report as one ``<div>``, its style and script inside: a page's body, or a notebook cell's output."""
    data = _data(report)
    payload = script_safe(json.dumps(data, separators=(",", ":")))
    ident = "shapecheck-" + hashlib.sha1(payload.encode()).hexdigest()[:12]
    errors = len(report.errors)
    return "\n".join([
        f'<div class="shapecheck" id="{ident}">',
        f"<style>{_asset('view.css')}</style>",
        _header(report, errors),
        '<section class="sc-flow" aria-label="shape flow">',
        '<div class="sc-toolbar"><button type="button" data-act="expand">Expand all</button> '
        '<button type="button" data-act="collapse">Collapse all</button> '
        '<span class="sc-hint">Hover a block for its arithmetic; click a folded block to open it.</span></div>',
        '<div class="sc-canvas"></div><div class="sc-tip" hidden></div>',
        "<noscript>The shape-flow picture and folding the table need JavaScript (in Jupyter: trust "
        "the notebook); the table below has the shapes.</noscript>",
        "</section>",
        _table(report),
        _totals(report),
        _findings(report),
        f'<script type="application/json" class="sc-data">{payload}</script>',
        # The script's own parent; where scripts run detached (the classic notebook), the first
        # not yet drawn report of this id (the same report can be displayed twice).
        f'<script>{_asset("view.js")}(document.currentScript ? document.currentScript.parentNode '
        f': Array.prototype.filter.call(document.querySelectorAll(\'[id="{ident}"]\'), '
        f'function (e) {{ return !e.getAttribute("data-ready"); }})[0]);</script>',
        "</div>",
    ])


def script_safe(payload: str) -> str:
    """JSON that a ``<script>`` element cannot end early. In a script's data, ``</script``
    closes it, and ``<!--`` followed by ``<script`` makes the parser look for a second
    ``</script>``, swallowing the rest of the page. JSON strings may spell ``<`` as
    ``\\u003c``, so every ``<`` is written that way: no tag can start inside."""
    return payload.replace("<", "\\u003c")


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


@cache
def _asset(name: str) -> str:
    return resources.files("shapecheck.render").joinpath("assets", name).read_text(encoding="utf-8")


def _data(report: Report) -> dict[str, Any]:
    nodes = flow.tree(report.layers)
    return {
        "inputs": [list(shape) for shape in report.input_shapes],
        "outputs": [list(shape) for shape in report.outputs],
        "rows": hover.rows(report),
        "nodes": [{"r": n.row, "lo": n.lo, "hi": n.hi, "c": n.children, "n": n.times, "p": n.period, "o": n.open}
                  for n in nodes],
        "findings": [{"code": f.code, "sev": f.severity, "msg": f.message,
                      "at": str(f.location) if f.location else None, "src": snippets.line(f.location)}
                     for f in report.findings],
    }


def _header(report: Report, errors: int) -> str:
    origin = f" <small>{escape(report.path)}</small>" if report.path else ""
    verdict = (f'<span class="sc-bad">{errors} error(s)</span>' if errors
               else '<span class="sc-good">no error</span>')
    others = len(report.findings) - errors
    return (f"<header><h2>{escape(report.model)}{origin}</h2><p>input {escape(report.input_text)}, "
            + (f"{report.batch_text}, " if report.batch_text else "") + f"traced on {report.device} · {verdict}"
            + (f", {others} other finding(s)" if others else "") + "</p></header>")


def _table(report: Report) -> str:
    total_params = max(report.totals.params, 1)
    total_macs = max(report.totals.macs, 1)
    deepest = max((layer.depth for layer in report.layers), default=0)
    start = deepest if len(report.layers) <= _OPEN_ROWS else min(deepest, 2)
    buttons = " ".join(f'<button type="button" data-depth="{d}"{" aria-pressed=true" if d == start else ""}>'
                       f"{d if d < deepest else 'all'}</button>" for d in range(1, deepest + 1))
    # Rows below the opening depth start hidden: laying out RAFT's 1,736 rows to hide them
    # after took most of its page's second of loading.
    body = [_table_row(layer, _has_children(report.layers, layer), total_params, total_macs, layer.depth > start)
            for layer in report.layers]
    return (f'<section class="sc-layers" data-start-depth="{start}"><h3>Layers</h3>'
            f'<p class="sc-depths">Depth: {buttons or "all"}</p>'
            '<table><thead><tr><th>Layer (type)</th><th>Input shape</th><th>Output shape</th>'
            '<th>Params</th><th>MACs</th><th>Source</th></tr></thead><tbody>'
            + "".join(body) + "</tbody></table></section>")


def _has_children(layers: tuple[Layer, ...], layer: Layer) -> bool:
    after = layer.index + 1
    return after < len(layers) and layers[after].depth > layer.depth


def _table_row(layer: Layer, parent: bool, total_params: int, total_macs: int, hidden: bool) -> str:
    toggle = ('<button type="button" class="sc-toggle" aria-expanded="true" aria-label="fold">▾</button>'
              if parent else '<span class="sc-toggle"></span>')
    mark = ' <span class="sc-bad">fails</span>' if layer.failed else ""
    site = layer.called_at or layer.defined_at
    return (f'<tr data-row="{layer.index}" data-depth="{layer.depth}"{" class=sc-fail" if layer.failed else ""}'
            f'{" hidden" if hidden else ""}>'
            f'<td style="padding-left:{0.3 + 1.1 * layer.depth:.1f}em">{toggle}<a href="#" class="sc-name">'
            f"{escape(layer.name)}</a> <span class=sc-type>({escape(layer.type)})</span>{mark}</td>"
            f"<td>{escape(shapes(layer.input_shapes)) or '--'}</td>"
            f"<td>{escape(shapes(layer.output_shapes)) or '--'}</td>"
            f"{_bar(layer.params, total_params, f'{layer.params:,}')}{_bar(layer.macs, total_macs, count(layer.macs))}"
            f"<td class=sc-src>{escape(f'{site.path}:{site.line}') if site else ''}</td></tr>")


def _bar(value: int, total: int, text: str) -> str:
    if not value:
        return "<td class=sc-num>--</td>"
    width = min(100.0, 100 * value / total)
    return f'<td class=sc-num><span class=sc-bar style="width:{width:.1f}%"></span>{text}</td>'


def _totals(report: Report) -> str:
    t = report.totals
    dtype = dtype_name(report.inputs[0].dtype) if report.inputs else "float32"
    per_sample = t.macs // report.batch if report.batch_text else t.macs
    batch = f" for {report.batch_text}" if report.batch_text else ""
    outputs = ", ".join(f"{name} {shapes((shape,))}" for name, shape in zip(report.output_names, report.outputs)) \
        if report.output_names else shapes(report.outputs)
    items = [
        f"Params: {t.params:,} (trainable {t.trainable_params:,}, non-trainable {t.non_trainable_params:,}); "
        f"buffers: {t.buffers:,}",
        f"MACs: {count(t.macs)}{batch}" + (f" ({count(per_sample)} per sample)" if batch else "") + "; "
        f"FLOPs: {count(t.flops)} (2 x MACs)",
        f"Parameter memory: {size(t.param_bytes)} (+{size(t.buffer_bytes)} buffers); "
        f"activation memory: {size(t.activation_bytes)}{batch}, {dtype}",
        f"Outputs: {outputs or '--'}",
        *(f"Note: {note}" for note in report.notes),
    ]
    return '<section class="sc-totals"><h3>Totals</h3><ul>' + "".join(f"<li>{escape(i)}</li>" for i in items) \
        + "</ul></section>"


def _findings(report: Report) -> str:
    if not report.findings:
        return '<section class="sc-findings"><h3>Findings</h3><p class="sc-good">No findings.</p></section>'
    return ('<section class="sc-findings"><h3>Findings</h3><ol>'
            + "".join(_finding(position, f) for position, f in enumerate(report.findings)) + "</ol></section>")


def _finding(position: int, finding: Finding) -> str:
    where = f"<code>{escape(str(finding.location))}</code> " if finding.location else ""
    call = finding.called_at
    called = (f" (called at <code>{escape(f'{call.path}:{call.line}')}</code>)"
              if call and finding.location and call.line != finding.location.line else "")
    extra = "".join(f"<p class=sc-more>{label}: {escape(text)}</p>"
                    for label, text in (("hint", finding.hint), ("fix", str(finding.fix) if finding.fix else None))
                    if text)
    return (f'<li id="sc-finding-{position}" class="sc-{finding.severity}"><span class="sc-sev">{finding.severity}'
            f"</span> {where}<b>{escape(finding.code)}</b> {escape(finding.message)}{called}{extra}"
            f"{_snippet(finding)}</li>")


def _snippet(finding: Finding) -> str:
    lines = snippets.around(finding.location)
    if not lines or finding.location is None:
        return ""
    width = len(str(lines[-1][0]))
    shown = "".join(
        f'<span class="{"sc-here" if number == finding.location.line else ""}">'
        f"{str(number).rjust(width)} | {escape(text)}</span>\n" for number, text in lines)
    return f'<pre class="sc-snippet">{shown}</pre>'
