"""``shapecheck.assert_shapes``: one call in a user's test that fails with the diagnostics."""
from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from shapecheck.report import Report, Shape


class ShapeCheckFailed(AssertionError):
    """Raised by assert_shapes; carries the Report for tools that want more than the text."""

    def __init__(self, report: Report, table: bool = True) -> None:
        from shapecheck.render.text import diagnostic, render

        head = (f"shapecheck: {len(report.errors)} error(s) in {report.model} for input "
                f"{report.input_text}" + (f", {report.batch_text}" if report.batch_text else ""))
        lines = [head, *(diagnostic(f) for f in report.errors)]
        if table:  # the table and totals; the diagnostics are already above
            lines += ["", render(replace(report, findings=())).rstrip()]
        super().__init__("\n".join(lines))
        self.report = report


def _table_default() -> bool:
    """pytest's --shapecheck-no-table, when the plugin runs in this process; shown otherwise."""
    plugin = sys.modules.get("shapecheck.pytest_plugin")
    return not getattr(plugin, "NO_TABLE", False)


def assert_shapes(model: Any, input: str | Sequence[Any],  # noqa: A002 - the API's own name
                  output: Shape | int | str | None = None, max_params: int | str | None = None,
                  max_macs: int | str | None = None, *, table: bool | None = None, **options: Any) -> Report:
    """Analyze ``model`` and raise AssertionError (diagnostics, then the per-layer table) when
    any error finding remains: a shape error, a wrong ``output``, a blown budget.

    ``input`` is required: no default could be the model's. ``max_macs`` is per sample.
    ``table`` defaults to pytest's ``--shapecheck-no-table`` (shown unless given). Other
    keyword arguments go to ``shapecheck.analyze``. Returns the Report, so a test can go on
    to assert on it.
    """
    from shapecheck.analysis import analyze

    __tracebackhide__ = True
    report = analyze(model, input, output=output, max_params=max_params, max_macs=max_macs, **options)
    if report.errors:
        raise ShapeCheckFailed(report, _table_default() if table is None else table)
    return report
