"""[tool.shapecheck] and the pytest marker share one schema (shapecheck.settings): every
mistake is one line naming the key, the value and what is allowed, with exit 2; nothing is
coerced into a setting the user did not write."""
from __future__ import annotations

from pathlib import Path

import pytest

from shapecheck.cli import main

GOOD = 'target = "net.py:Net"\ninput = "8"\n'


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "net.py").write_text("import torch.nn as nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n"
                                     "        super().__init__()\n        self.fc = nn.Linear(8, 2)\n\n"
                                     "    def forward(self, x):\n        return self.fc(x)\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("line", "says"), [
    ('batch = "abc"', 'batch = "abc" is not valid; batch is a whole number of at least 1'),
    ("batch = 0", "batch = 0 is not valid"),
    ("batch = -3", "batch = -3 is not valid"),
    ("batch = inf", "batch = inf is not valid"),
    ("batch = 2.9", "batch = 2.9 is not valid"),
    ("dtype = 5", "dtype = 5 is not valid; dtype is a dtype name"),
    ('dtype = "float33"', 'dtype = "float33" is not valid'),
    ("select = 5", "select = 5 is not valid; select is rule codes"),
    ('mode = "bogus"', 'mode = "bogus" is not valid; mode is "eval", "train" or "same"'),
    ("max_params = -1", "max_params = -1 is not valid; max_params is a count of at least 0"),
    ('max_macs = "lots"', 'max_macs = "lots" is not valid'),
    ('max_activation_memory = "-2GiB"', "max_activation_memory = \"-2GiB\" is not valid"),
    ("colour = 1", "unknown key 'colour'"),
])
def test_a_model_entry_mistake_is_one_line_naming_key_value_and_what_is_allowed(line, says, project, capsys):
    (project / "pyproject.toml").write_text(f"[[tool.shapecheck.models]]\n{GOOD}{line}\n")
    assert main(["project"]) == 2
    err = capsys.readouterr().err
    assert says in err and "[[tool.shapecheck.models]] #1" in err
    assert len(err.strip().splitlines()) == 1 and "internal error" not in err


@pytest.mark.parametrize(("text", "says"), [
    ('[tool.shapecheck]\nzero_config = "false"\n', 'zero_config = "false" is not valid; zero_config is true or false'),
    ("[[tool.shapecheck.models]]\ntarget = 5\ninput = \"8\"\n", "target = 5 is not valid"),
    ("[tool.shapecheck]\nmodels = 3\n", "models = 3 is not valid"),
])
def test_a_project_table_mistake_is_one_line(text, says, project, capsys):
    (project / "pyproject.toml").write_text(text)
    assert main(["project"]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1


def test_a_pyproject_that_is_not_utf8_is_one_line(project, capsys):
    (project / "pyproject.toml").write_bytes("[[tool.shapecheck.models]]\n# caf\xe9\n".encode("latin-1") + GOOD.encode())
    assert main(["project"]) == 2
    err = capsys.readouterr().err
    assert "not UTF-8" in err and "save it as UTF-8" in err and len(err.strip().splitlines()) == 1


def test_valid_settings_still_run(project, capsys):
    (project / "pyproject.toml").write_text(
        f'[tool.shapecheck]\nzero_config = false\nselect = "SHP0"\n[[tool.shapecheck.models]]\n{GOOD}'
        'batch = 3\ndtype = "float64"\nmode = "train"\nmax_params = "1M"\nmax_activation_memory = 1024\n')
    assert main(["project"]) == 0, capsys.readouterr().err


def test_the_marker_checks_its_arguments_with_the_same_schema(pytester):
    pytester.makepyfile("""
        import pytest
        import torch.nn as nn

        @pytest.fixture
        def model():
            return nn.Linear(8, 2)

        @pytest.mark.shapecheck(input="8", batch=2.9)
        def test_it(model):
            pass
    """)
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*batch = 2.9 is not valid; batch is a whole number of at least 1*"])
