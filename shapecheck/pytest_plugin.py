"""The pytest plugin (entry point ``pytest11``): a marker, a snapshot fixture, readable failures.

- ``@pytest.mark.shapecheck(input="3x32x32", output=10)`` on a test that receives the model
  through a fixture (``model`` by default, ``fixture="name"`` otherwise) checks the model
  before the test body runs.
- ``shape_snapshot.assert_match(model, "3x32x32")`` compares per-layer shapes, parameters
  and MACs with ``__shapecheck_snapshots__/<module>/<test>.json`` beside the test file;
  ``--shapecheck-update`` writes it.

torch is imported only when a marked test or the fixture runs, so the plugin costs nothing
in a suite that does not use it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

SNAPSHOT_DIR = "__shapecheck_snapshots__"
NO_TABLE = False  # --shapecheck-no-table, read by assert_shapes


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("shapecheck", "shapecheck: model shapes, snapshots")
    group.addoption("--shapecheck-update", action="store_true", default=False,
                    help="Write shape snapshots instead of comparing with them.")
    group.addoption("--shapecheck-no-table", action="store_true", default=False,
                    help="Leave the per-layer table out of shapecheck failures.")


def pytest_configure(config: pytest.Config) -> None:
    global NO_TABLE
    NO_TABLE = bool(config.getoption("shapecheck_no_table", False))  # assert_shapes' default
    config.addinivalue_line(
        "markers", "shapecheck(input, output=None, max_params=None, max_macs=None, fixture='model', **options): "
                   "check the model fixture's shapes before the test runs")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    __tracebackhide__ = True
    marker = item.get_closest_marker("shapecheck")
    if marker is None:
        return
    from shapecheck.errors import UsageError
    from shapecheck.settings import MARKER, check

    try:
        check(marker.kwargs, MARKER, f"@pytest.mark.shapecheck on {item.nodeid}")
    except UsageError as exc:
        pytest.fail(str(exc), pytrace=False)
    options = dict(marker.kwargs)
    fixture = options.pop("fixture", "model")
    funcargs = getattr(item, "funcargs", {})
    if fixture not in funcargs:
        pytest.fail(f"@pytest.mark.shapecheck needs the test to take the '{fixture}' fixture "
                    "(or name another with fixture=...)", pytrace=False)
    if marker.args:
        options.setdefault("input", marker.args[0])
    if "input" not in options:
        pytest.fail("@pytest.mark.shapecheck needs the input shape: @pytest.mark.shapecheck(input=\"3x32x32\")",
                    pytrace=False)
    from shapecheck.testing import assert_shapes

    assert_shapes(funcargs[fixture], table=not item.config.getoption("shapecheck_no_table"), **options)


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: Any, right: Any) -> list[str] | None:
    """``assert report_a == report_b`` explains the difference layer by layer."""
    # Compared by name, so a failing assert in a suite without torch never imports it.
    if op != "==" or not (_is_report(left) and _is_report(right)):
        return None
    from shapecheck import snapshot

    return ["shapecheck reports differ:", *snapshot.drift(snapshot.data(right), snapshot.data(left))]


class ShapeSnapshot:
    """Compare a model's shapes with the stored snapshot, or write it under --shapecheck-update."""

    def __init__(self, folder: Path, name: str, update: bool) -> None:
        self.folder, self.name, self.update = folder, name, update

    def path(self, name: str | None = None) -> Path:
        return self.folder / f"{_safe(name or self.name)}.json"

    def assert_match(self, model: Any, input: Any = None, *, name: str | None = None,  # noqa: A002
                     **options: Any) -> None:
        from shapecheck import snapshot
        from shapecheck.analysis import analyze
        from shapecheck.report import Report

        __tracebackhide__ = True
        if input is None and not isinstance(model, Report):
            pytest.fail("shape_snapshot.assert_match(model, input) needs the input shape, e.g. \"3x32x32\"",
                        pytrace=False)
        report = model if isinstance(model, Report) else analyze(model, input, **options)
        current, path = snapshot.data(report), self.path(name)
        if self.update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(current, indent=2) + "\n")
            return
        if not path.is_file():
            pytest.fail(f"no shape snapshot {path}; run pytest --shapecheck-update to write it", pytrace=False)
        changes = snapshot.drift(json.loads(path.read_text()), current)
        if changes:
            pytest.fail("\n".join([f"shape snapshot {path.name} drifted ({report.model}, input {report.input_text}):",
                                   *(f"  {line}" for line in changes),
                                   "run pytest --shapecheck-update to accept the new shapes"]), pytrace=False)


@pytest.fixture
def shape_snapshot(request: pytest.FixtureRequest) -> ShapeSnapshot:
    test_file = Path(str(request.node.path))
    folder = test_file.parent / SNAPSHOT_DIR / test_file.stem
    return ShapeSnapshot(folder, request.node.name, request.config.getoption("shapecheck_update"))


def _is_report(value: Any) -> bool:
    return type(value).__name__ == "Report" and type(value).__module__ == "shapecheck.report"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-\[\]]+", "_", name)
