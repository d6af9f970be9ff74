"""--fix and --diff on copies of the examples: the rewritten source, byte for byte."""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from shapecheck.cli import main

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture
def copy(tmp_path, monkeypatch):
    """Copy an example into a fresh folder and work there, as a user would on their own file."""
    monkeypatch.chdir(tmp_path)

    def make(name: str) -> Path:
        target = tmp_path / name
        shutil.copy(EXAMPLES / name, target)
        return target

    return make


def _fix(path: Path, spec: str = "3x64x64", *extra: str) -> int:
    return main([f"{path.name}:Net", "--input", spec, "--fix", *extra])


def _expected(name: str, *replacements: tuple[str, str]) -> str:
    text = (EXAMPLES / name).read_text()
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("name, replacements", [
    ("quiz_b.py", [("nn.Linear(10 * 32 * 32, 5)", "nn.Linear(10 * 31 * 31, 5)"),
                   ("x.view(-1, 10 * 32 * 32)", "x.flatten(1)")]),
    ("quiz_c.py", [("nn.Linear(20 * 12 * 12, 50)", "nn.Linear(20 * 13 * 13, 50)"),
                   ("x.view(-1, 20 * 12 * 12)", "x.flatten(1)")]),
    ("quiz_d.py", [("nn.Linear(20 * 14 * 14, 50)", "nn.Linear(20 * 13 * 13, 50)"),
                   ("x.view(-1, 20 * 14 * 14)", "x.flatten(1)")]),
    # The fold hides the wrong in_features: the second round finds and fixes it.
    ("folded_batch.py", [("nn.Linear(10 * 13 * 13, 50)", "nn.Linear(20 * 13 * 13, 50)"),
                         ("x.view(-1, 10 * 13 * 13)", "x.flatten(1)")]),
    ("missing_import.py", [("import torch.nn as nn\n", "import torch.nn as nn\nimport torch.nn.functional as F\n")]),
])
def test_fix_rewrites_the_broken_examples_and_leaves_them_clean(copy, capsys, name, replacements):
    path = copy(name)
    spec = "3x32x32" if name == "missing_import.py" else "3x64x64"
    assert _fix(path, spec) == 0  # the re-analysis after fixing finds no error
    assert path.read_text() == _expected(name, *replacements)
    assert " SHP00" not in capsys.readouterr().out
    before = path.read_bytes()
    assert _fix(path, spec) == 0 and path.read_bytes() == before  # idempotent
    assert sorted(p.name for p in path.parent.iterdir() if p.suffix == ".py") == [name]  # no temp files left


def test_a_batch_size_held_in_an_attribute_is_found_and_fixed(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    fixture = Path(__file__).parent / "fixtures" / "rules" / "hardcoded_batch_name.py"
    path = tmp_path / fixture.name
    shutil.copy(fixture, path)
    assert main([f"{path.name}:Net", "--input", "3x16x16"]) == 1
    assert "SHP004 view(2, -1) does not keep the batch" in capsys.readouterr().out
    assert _fix(path, "3x16x16") == 0
    assert path.read_text() == fixture.read_text().replace("x.view(self.batch_size, -1)", "x.flatten(1)")


def test_diff_prints_a_unified_diff_and_writes_nothing(copy, capsys):
    path = copy("quiz_c.py")
    before = path.read_bytes()
    assert main(["quiz_c.py:Net", "--input", "3x64x64", "--diff"]) == 1
    out = capsys.readouterr().out
    assert path.read_bytes() == before
    assert out.startswith("--- a/quiz_c.py\n+++ b/quiz_c.py\n")
    assert "-        self.fc1 = nn.Linear(20 * 12 * 12, 50)\n+        self.fc1 = nn.Linear(20 * 13 * 13, 50)\n" in out
    assert "-        x = x.view(-1, 20 * 12 * 12)\n+        x = x.flatten(1)\n" in out


def test_diff_of_a_clean_model_is_empty(copy, capsys):
    copy("quiz_a.py")
    assert main(["quiz_a.py:Net", "--input", "3x64x64", "--diff"]) == 0
    assert capsys.readouterr().out == ""


BROKEN_STYLES = '''\
# -*- coding: latin-1 -*-
"""Caf\xe9 model: a plain integer, a keyword argument, CRLF line endings."""
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc1 = nn.Linear(in_features=1800, out_features=10)
        self.fc2 = nn.Linear(10, 2)

    def forward(self, x):
        return self.fc2(self.fc1(self.conv(x).flatten(1)))
'''


def test_fix_keeps_encoding_line_endings_plain_integers_keywords_and_permissions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "styles.py"
    path.write_bytes(BROKEN_STYLES.replace("\n", "\r\n").encode("latin-1"))
    os.chmod(path, 0o640)
    assert main(["styles.py:Net", "--input", "3x16x16", "--fix"]) == 0
    expected = BROKEN_STYLES.replace("in_features=1800", "in_features=1568").replace("\n", "\r\n")
    assert path.read_bytes() == expected.encode("latin-1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_fix_refuses_an_expression_it_does_not_understand(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "computed.py"
    source = BROKEN_STYLES.replace("in_features=1800", "in_features=self.width()").replace(
        "    def forward", "    def width(self):\n        return 1800\n\n    def forward")
    path.write_text(source)
    assert main(["computed.py:Net", "--input", "3x16x16", "--fix"]) == 1
    assert path.read_text() == source
    assert main(["computed.py:Net", "--input", "3x16x16", "--format", "json"]) == 1
    assert "not fixed automatically: in_features is `self.width()`, not a literal expression" in capsys.readouterr().out


FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("name, target, spec, old, new", [
    ("twin_classes.py", "Net", "8", "self.fc = nn.Linear(9, 4)", "self.fc = nn.Linear(8, 4)"),
    ("factory_model.py", "make_model", "3x16x16", "nn.Linear(128 * 4 * 4, 256)", "nn.Linear(8 * 14 * 14, 256)"),
])
def test_fix_edits_the_class_or_factory_that_created_the_layer(tmp_path, monkeypatch, name, target, spec, old, new):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / name
    shutil.copy(FIXTURES / name, path)
    original = path.read_text()
    assert main([f"{name}:{target}", "--input", spec, "--fix"]) == 0
    assert original.count(old) == 1
    assert path.read_text() == original.replace(old, new)


def test_fix_in_a_sibling_module_is_seen_by_the_re_analysis(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name in ("model.py", "sibling_layers.py"):
        shutil.copy(FIXTURES / "sibling" / name, tmp_path / name)
    assert main(["model.py:Net", "--input", "3x17x17", "--fix"]) == 0
    assert "nn.Linear(20 * 13 * 13, 10)" in (tmp_path / "sibling_layers.py").read_text()
    err = capsys.readouterr().err
    assert err.count("fixed") == 1 and "SHP001" not in capsys.readouterr().out


def test_an_argument_wrapped_over_lines_is_reported_on_one_line_and_fixed(tmp_path, monkeypatch, capsys):
    # Black-style wrapping puts an operator at a line start: parsed alone, that is an IndentationError.
    monkeypatch.chdir(tmp_path)
    source = ("import torch.nn as nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
              "        self.fc = nn.Linear(\n            20\n            * 12 * 12,\n            50)\n\n"
              "    def forward(self, x):\n        return self.fc(x.flatten(1))\n")
    (tmp_path / "wrapped.py").write_text(source)
    assert main(["wrapped.py:Net", "--input", "20x13x13"]) == 1
    finding = next(line for line in capsys.readouterr().out.splitlines() if "SHP001" in line)
    assert "in_features=2880 (20 * 12 * 12) but receives 3380" in finding
    assert main(["wrapped.py:Net", "--input", "20x13x13", "--fix"]) == 0
    assert (tmp_path / "wrapped.py").read_text() == source.replace("20\n            * 12 * 12", "20 * 13 * 13")


def _variant(tmp_path, name, text, encoding="utf-8", bom=b""):
    path = tmp_path / name
    path.write_bytes(bom + text.encode(encoding))
    return path


QUIZ = (EXAMPLES / "quiz_c.py").read_text()
NON_ASCII_BEFORE = QUIZ.replace("self.fc1 = nn.Linear(20 * 12 * 12, 50)",
                                "self.größe = 1; self.fc1 = nn.Linear(20 * 12 * 12, 50)")


@pytest.mark.parametrize(("name", "text", "encoding", "bom", "line", "column"), [
    ("bom.py", QUIZ, "utf-8", b"\xef\xbb\xbf", 11, 9),
    ("utf8.py", NON_ASCII_BEFORE, "utf-8", b"", 11, 25),
    ("latin.py", "# -*- coding: latin-1 -*-\n" + NON_ASCII_BEFORE, "latin-1", b"", 12, 25),
    ("cp.py", "# -*- coding: cp1252 -*-\n" + NON_ASCII_BEFORE.replace("größe = 1", "größe = \"€\""), "cp1252", b"", 12, 27),
])
def test_encodings_keep_positions_in_characters_and_the_fix(name, text, encoding, bom, line, column, tmp_path,
                                                            monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = _variant(tmp_path, name, text, encoding, bom)
    assert main([f"{name}:Net", "--input", "3x64x64"]) == 1
    finding = next(x for x in capsys.readouterr().out.splitlines() if "SHP001" in x)
    assert finding.startswith(f"{name}:{line}:{column}: SHP001")  # character columns, as flake8 and ruff
    assert main([f"{name}:Net", "--input", "3x64x64", "--diff"]) == 1
    assert "+        " in capsys.readouterr().out  # the diff has the fix: not "nothing to change"
    assert main([f"{name}:Net", "--input", "3x64x64", "--fix"]) == 0
    expected = text.replace("20 * 12 * 12, 50", "20 * 13 * 13, 50").replace("x.view(-1, 20 * 12 * 12)", "x.flatten(1)")
    assert path.read_bytes() == bom + expected.encode(encoding)  # the BOM and the encoding kept


def test_a_file_changed_after_the_analysis_is_not_written(tmp_path, monkeypatch):
    from shapecheck import fix, pipeline
    from shapecheck.errors import UsageError
    from shapecheck.spec import parse_input
    from shapecheck.target import parse_target

    monkeypatch.chdir(tmp_path)
    path = _variant(tmp_path, "net.py", QUIZ)

    def run(fresh=False):
        report = pipeline.run(parse_target("net.py:Net"), pipeline.Options((parse_input("3x64x64"),)), fresh=fresh)
        path.write_text(QUIZ + "# the user saved again meanwhile\n")
        return report

    with pytest.raises(UsageError, match="changed since shapecheck read it"):
        fix.until_clean(run, lambda change: None, fix.project_roots("net.py"))
    assert path.read_text() == QUIZ + "# the user saved again meanwhile\n"
