"""The pre-commit hook and [tool.shapecheck], run by the real pre-commit in a scratch git repo."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shapecheck import config
from shapecheck.cli import main
from shapecheck.errors import UsageError

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"
PYPROJECT = """\
[tool.shapecheck]
ignore = ["SHP105", "SHP106"]

[[tool.shapecheck.models]]
target = "models/net.py:Net"
input = "3x64x64"
output = "5"
"""
LAYERS = "import torch.nn as nn\n\n\ndef head():\n    return nn.Linear(50, 5)\n"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A user's project: a broken quiz model that imports a sibling, configured in pyproject."""
    (tmp_path / "models").mkdir()
    shutil.copy(EXAMPLES / "quiz_c.py", tmp_path / "models" / "net.py")
    (tmp_path / "models" / "layers.py").write_text(LAYERS)
    net = tmp_path / "models" / "net.py"
    net.write_text(net.read_text().replace("import torch.nn.functional as F\n",
                                           "import torch.nn.functional as F\nfrom layers import head\n"))
    (tmp_path / "other.py").write_text("x = 1\n")
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _fix_model(root: Path) -> None:
    net = root / "models" / "net.py"
    net.write_text(net.read_text().replace("20 * 12 * 12", "20 * 13 * 13"))


def test_changed_files_select_the_models_defined_in_or_importing_them(project, capsys):
    assert main(["other.py"]) == 0 and capsys.readouterr().out == ""
    assert main(["models/layers.py"]) == 1  # net.py imports it
    assert "models/net.py:12:9: SHP001" in capsys.readouterr().out
    _fix_model(project)
    assert main(["models/net.py"]) == 0


def test_no_files_checks_every_configured_model(project, capsys):
    assert main([]) == 1
    out = capsys.readouterr().out
    assert out.startswith("models/net.py:Net (input 3x64x64): 2 error(s), 0 other finding(s)\n")


def test_budgets_and_output_come_from_the_config(project, capsys):
    _fix_model(project)
    (project / "pyproject.toml").write_text(PYPROJECT.replace('output = "5"', 'output = "10"\nmax_params = "100K"'))
    assert main([]) == 1
    out = capsys.readouterr().out
    assert "SHP007 output is 5 per sample but 10 was expected" in out
    assert "SHP201 150,085 parameters exceed --max-params 100,000" not in out  # fixed model: 175,085
    assert "SHP201 175,085 parameters exceed --max-params 100,000" in out


def test_zero_config_classes_declare_their_input(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.py").write_text(
        "import torch.nn as nn\n\n\nclass Tiny(nn.Module):\n    shapecheck_input = '3x8x8'\n"
        "    shapecheck_output = 10\n\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(3 * 8 * 8, 5)\n\n    def forward(self, x):\n        return self.fc(x.flatten(1))\n")
    assert config.declared("tiny.py")[0].input == ("3x8x8",)
    assert main(["tiny.py"]) == 1
    assert "tiny.py:10:9: SHP007 output is 5 per sample but 10 was expected" in capsys.readouterr().out


TINY = ("import torch.nn as nn\nfrom blocks import width\n\n\nclass Tiny(nn.Module):\n    shapecheck_input = '3x8x8'\n\n"
        "    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(width(), 5)\n\n"
        "    def forward(self, x):\n        return self.fc(x.flatten(1))\n")


def test_no_files_checks_the_zero_config_classes_too(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.py").write_text(TINY)
    (tmp_path / "blocks.py").write_text("def width():\n    return 3 * 8 * 7\n")
    assert main([]) == 1
    assert "tiny.py:Tiny (input 3x8x8): 1 error(s)" in capsys.readouterr().out


def test_a_change_two_imports_away_rechecks_configured_and_zero_config_models(project, capsys):
    (project / "models" / "layers.py").write_text("from sizes import classes\nimport torch.nn as nn\n\n\n"
                                                  "def head():\n    return nn.Linear(50, classes())\n")
    (project / "models" / "sizes.py").write_text("def classes():\n    return 5\n")
    (project / "models" / "tiny.py").write_text(TINY.replace("from blocks import width", "from layers import head")
                                                .replace("width()", "3 * 8 * 7"))
    (project / "pyproject.toml").write_text(PYPROJECT.replace("[tool.shapecheck]", "[tool.shapecheck]\nzero_config = true"))
    assert main(["models/sizes.py"]) == 1  # net.py -> layers.py -> sizes.py; tiny.py -> layers.py -> sizes.py
    out = capsys.readouterr().out
    assert "models/net.py:Net (input 3x64x64)" in out and "models/tiny.py:Tiny (input 3x8x8)" in out
    assert main(["other.py"]) == 0


def test_project_mode_offers_every_format_and_a_checkpoint_per_model(project, capsys):
    import json

    import jsonschema
    import torch

    from shapecheck.render.json import SCHEMA_FILE

    (project / "tiny.py").write_text(TINY.replace("from blocks import width\n", "").replace("width()", "3 * 8 * 8"))
    torch.save({"fc.weight": torch.zeros(5, 100), "fc.bias": torch.zeros(5)}, project / "tiny.pt")
    (project / "pyproject.toml").write_text(PYPROJECT + '\n[[tool.shapecheck.models]]\ntarget = "tiny.py:Tiny"\n'
                                            'input = "3x8x8"\ncheckpoint = "tiny.pt"\n')
    assert main(["--format", "json"]) == 1
    reports = json.loads(capsys.readouterr().out)
    schema = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    for report in reports:
        schema.validate(report)
    assert [r["model"]["name"] for r in reports] == ["Net", "Tiny"]
    assert any(f["code"] == "SHP301" for f in reports[1]["findings"])  # fc.weight [5, 192] vs [5, 100]
    assert main(["--format", "sarif"]) == 1
    sarif = json.loads(capsys.readouterr().out)
    assert len(sarif["runs"]) == 2 and sarif["runs"][1]["properties"]["model"] == "Tiny"
    jsonschema.Draft4Validator(json.loads((ROOT / "tests" / "schemas" / "sarif-schema-2.1.0.json").read_text())) \
        .validate(sarif)
    assert main(["--format", "markdown"]) == 1
    assert capsys.readouterr().out.count("### shapecheck:") == 2


def test_config_typos_are_usage_errors(tmp_path, capsys):
    (tmp_path / "pyproject.toml").write_text("[tool.shapecheck]\nmodel = []\n")
    with pytest.raises(UsageError, match="unknown key 'model'"):
        config.find(tmp_path)


def test_nothing_to_check_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([]) == 2
    assert "nothing to check" in capsys.readouterr().err


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})


def _try_repo(root: Path, hook: str, home: Path) -> subprocess.CompletedProcess[str]:
    bin_dir = str(Path(sys.executable).parent)  # where `shapecheck` is installed
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "PRE_COMMIT_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), hook, "--all-files"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=900)


def _repo(project: Path) -> Path:
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "broken model")
    return project


def test_pre_commit_system_hook_fails_on_a_broken_model_and_passes_once_fixed(project, tmp_path_factory):
    repo, home = _repo(project), tmp_path_factory.mktemp("pre-commit-home")
    broken = _try_repo(repo, "shapecheck-system", home)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "models/net.py:12:9: SHP001 fc1: Linear expects in_features=2880" in broken.stdout
    _fix_model(repo)
    _git(repo, "commit", "-qam", "fix fc1")
    fixed = _try_repo(repo, "shapecheck-system", home)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "Passed" in fixed.stdout


QUITS = """import os
import sys

import torch.nn as nn

print("debug: loading quits.py")


class Quits(nn.Module):
    shapecheck_input = "8"

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        os._exit(0)


if "--help" in sys.argv:
    sys.exit(0)
"""


def test_pre_commit_never_passes_when_a_model_exits(project, tmp_path_factory):
    """A clean configured model beside one whose forward calls os._exit(0): the commit fails."""
    _fix_model(project)
    (project / "models" / "quits.py").write_text(QUITS)
    result = _try_repo(_repo(project), "shapecheck-system", tmp_path_factory.mktemp("pre-commit-home"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Failed" in result.stdout and "models/quits.py:17:9: SHP008" in result.stdout
    assert "os._exit(0)" in result.stdout


def test_pre_commit_isolated_hook_installs_shapecheck_and_fails_on_a_broken_model(project, tmp_path_factory):
    """Builds pre-commit's own environment, torch included: about a minute from pip's cache."""
    result = _try_repo(_repo(project), "shapecheck", tmp_path_factory.mktemp("pre-commit-home"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "SHP001" in result.stdout


def test_manifest_declares_both_hooks():
    text = (ROOT / ".pre-commit-hooks.yaml").read_text()
    for line in ("- id: shapecheck\n", "- id: shapecheck-system\n", "entry: shapecheck", "language: python",
                 "language: system", "types: [python]", "require_serial: true", "minimum_pre_commit_version"):
        assert line in text
