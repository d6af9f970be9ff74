"""Module names and source lines come from the user's code: shown escaped in a terminal,
and as inert text in Markdown. The fixture is what an attacker's PR, or a careless paste,
puts into a model file."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from torch import nn

import shapecheck
from shapecheck.cli import main
from shapecheck.render import markdown, text
from shapecheck.render.escape import markdown_code, terminal

HOSTILE = ("\x1b[2J\x1b]0;pwned\x07\r\u202eevil|`<img src=x onerror=alert(1)>`\n| injected | row |")
CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _model() -> nn.Module:
    model = nn.Sequential()
    model.add_module(HOSTILE, nn.Linear(8, 4))  # add_module refuses only '.' and empty names
    model.add_module("head", nn.Linear(5, 2))  # a shape error, so there is a finding naming the layers
    return model


def test_text_output_shows_controls_escaped() -> None:
    report = shapecheck.analyze(_model(), "8")
    shown = text.render(report)
    assert not CONTROLS.search(shown)
    assert "\\x1b[2J\\x1b]0;pwned\\x07\\x0d\\u202eevil" in shown
    assert all(not CONTROLS.search(text.diagnostic(f)) and "\n" not in text.diagnostic(f) for f in report.findings)


def test_markdown_keeps_names_inside_their_cells_and_passes_no_html() -> None:
    report = shapecheck.analyze(_model(), "8")
    shown = markdown.render(report)
    table = [line for line in shown.splitlines() if line.startswith("|")]
    assert all(len(re.findall(r"(?<!\\)\|", line)) == 7 for line in table)  # six cells in every row
    assert "injected" not in "".join(line for line in shown.splitlines() if line.startswith("| injected"))
    assert not CONTROLS.search(shown)
    # The <img> is inside a code span fenced by more backticks than the name holds: text, not HTML.
    assert markdown_code("a`<b>`c") == "``a`<b>`c``"


@pytest.mark.parametrize("char", ["\x1b", "\x07", "\r", "\x9b", "\u202e", "\u2066", "\u2028"])
def test_each_control_is_escaped(char: str) -> None:
    assert not CONTROLS.search(terminal(f"a{char}b")) and terminal(f"a{char}b").startswith("a\\")


def test_a_source_line_quoted_in_an_error_reaches_the_terminal_escaped(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.py").write_text(
        "import torch.nn as nn\n\n"
        "LAYERS = {}['conv']  # \x1b]8;;http://evil\x07click\x1b]8;;\x07 \u202e\n")
    assert main(["net.py:Net", "--input", "4"]) == 2
    err = capsys.readouterr().err
    assert not CONTROLS.search(err) and "\\x1b]8;;http://evil\\x07click" in err
