"""The user's code may exit, print or parse sys.argv; none of it may make a check read as
passed (shapecheck.usercode). The fixtures in tests/fixtures/careless are written as a
careless user writes them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shapecheck import cli

ROOT = Path(__file__).resolve().parent.parent
CARELESS = "tests/fixtures/careless"


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("file", "line", "call", "doing"), [
    ("exit_at_import.py", 18, "sys.exit(0)", "importing"),
    ("exit_in_init.py", 10, "sys.exit(0)", "constructing Net"),
    ("os_exit_at_import.py", 15, "os._exit(0)", "importing"),
])
def test_an_exit_while_loading_is_a_usage_error_at_its_line(file: str, line: int, call: str, doing: str,
                                                            in_repo: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run_cli([f"{CARELESS}/{file}:Net", "--input", "8"], capsys)
    assert code == 2
    assert f"{CARELESS}/{file}:{line}" in err and doing in err and f"called {call}" in err
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize(("file", "call"), [("exit_in_forward.py", "sys.exit(0)"),
                                            ("os_exit_in_forward.py", "os._exit(0)")])
def test_an_exit_in_the_forward_is_a_finding_at_its_line(file: str, call: str, in_repo: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    code, out, err = run_cli([f"{CARELESS}/{file}:Net", "--input", "8"], capsys)
    assert code == 1
    finding = next(line for line in out.splitlines() if "SHP008" in line)
    assert finding.startswith(f"{CARELESS}/{file}:") and f"called {call}" in finding


def test_os_exit_is_put_back_after_the_command(in_repo: Path, capsys: pytest.CaptureFixture) -> None:
    real = os._exit
    run_cli([f"{CARELESS}/os_exit_in_forward.py:Net", "--input", "8"], capsys)
    assert os._exit is real and sys.argv[0] != f"{CARELESS}/os_exit_in_forward.py"


def test_the_models_prints_go_to_stderr_and_json_stays_valid(in_repo: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run_cli([f"{CARELESS}/prints.py:Net", "--input", "8", "--format", "json"], capsys)
    assert code == 0
    assert json.loads(out)["model"]["name"] == "Net"
    assert "loading model definitions..." in err and "building Net" in err and "x:" in err
    assert sys.stdout is sys.__stdout__ or "loading" not in out


def test_project_mode_checks_every_model_and_never_reads_as_passed_when_one_exits(tmp_path: Path) -> None:
    """A real `shapecheck project` process, as pre-commit runs it: a broken model beside
    models that exit (sys.exit and os._exit, at import and in forward) and one that prints."""
    for file in ("broken.py", "exit_at_import.py", "os_exit_in_forward.py", "os_exit_at_import.py", "prints.py"):
        (tmp_path / file).write_text((ROOT / CARELESS / file).read_text())
    (tmp_path / "pyproject.toml").write_text("""
[[tool.shapecheck.models]]
target = "broken.py:Net"
input = "3x64x64"
[[tool.shapecheck.models]]
target = "exit_at_import.py:Net"
input = "8"
[[tool.shapecheck.models]]
target = "os_exit_in_forward.py:Net"
input = "8"
[[tool.shapecheck.models]]
target = "os_exit_at_import.py:Net"
input = "8"
[[tool.shapecheck.models]]
target = "prints.py:Net"
input = "8"
""")
    result = subprocess.run([sys.executable, "-m", "shapecheck.cli", "project", "--format", "json"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    reports = {Path(r["model"]["path"]).name: r for r in json.loads(result.stdout)}
    assert set(reports) == {"broken.py", "os_exit_in_forward.py", "prints.py"}
    assert [f["code"] for f in reports["broken.py"]["findings"] if f["severity"] == "error"] == ["SHP001"]
    assert any("os._exit(0)" in f["message"] for f in reports["os_exit_in_forward.py"]["findings"])
    assert "exit_at_import.py:18:5: importing exit_at_import.py called sys.exit(0)" in result.stderr
    assert "os_exit_at_import.py:15:1: importing os_exit_at_import.py called os._exit(0)" in result.stderr
    assert "2 of 5 model(s) could not be checked" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_script_that_parses_its_arguments_at_import_sees_only_its_own_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "train.py").write_text(
        "import argparse\nimport torch.nn as nn\n"
        "parser = argparse.ArgumentParser()\nparser.add_argument('--epochs', type=int, default=3)\n"
        "args = parser.parse_args()\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(8, args.epochs)\n    def forward(self, x):\n        return self.fc(x)\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["train.py:Net", "--input", "8", "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)["outputs"] == [[2, 3]]


# -- runaway work ----------------------------------------------------------------------------
def test_a_forward_that_never_returns_ends_at_the_timeout_with_a_finding_at_its_layer(
        in_repo: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run_cli([f"{CARELESS}/endless.py:Net", "--input", "8", "--timeout", "1"], capsys)
    assert code == 1
    finding = next(line for line in out.splitlines() if "SHP008" in line)
    assert finding.startswith(f"{CARELESS}/endless.py:16:") and "wait: " in finding and "--timeout of 1 s" in finding


def test_a_timeout_in_the_project_table_applies_to_each_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "endless.py").write_text((ROOT / CARELESS / "endless.py").read_text())
    (tmp_path / "pyproject.toml").write_text('[tool.shapecheck]\ntimeout = 1\n'
                                             '[[tool.shapecheck.models]]\ntarget = "endless.py:Net"\ninput = "8"\n')
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["project"], capsys)
    assert code == 1 and "--timeout of 1 s" in out


def test_a_value_reading_forward_too_big_for_memory_is_refused_before_any_allocation(capsys) -> None:
    import torch
    from torch import nn

    import shapecheck

    class Big(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            with torch.device("meta"):
                self.fc = nn.Linear(100_000, 100_000)  # 40 GB of float32

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else x

    report = shapecheck.analyze(Big(), "100000", max_cpu_memory="1GiB")
    assert [f.code for f in report.errors] == ["SHP008"]
    assert "37.3 GiB of weights, more than --max-cpu-memory (1.0 GiB); nothing was allocated" in report.errors[0].message


def test_a_sizes_range_too_large_for_memory_is_one_line(in_repo: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run_cli(["sizes", "examples/quiz_c.py:Net", "--input", "3xHxW", "--range", "1..100000000"], capsys)
    assert code == 2 and "holds 100,000,000 sizes; at most 1,000,000" in err and len(err.strip().splitlines()) == 1


def test_ctrl_c_exits_130(tmp_path: Path) -> None:
    import signal
    import time

    process = subprocess.Popen([sys.executable, "-m", "shapecheck.cli", f"{CARELESS}/endless.py:Net", "--input", "8"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(8)  # torch imported, the forward spinning
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err


def test_a_base_exception_of_the_models_own_is_a_finding_not_a_traceback(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "net.py").write_text(
        "import torch.nn as nn\n\n\nclass Stop(BaseException):\n    pass\n\n\nclass Net(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(8, 2)\n\n"
        "    def forward(self, x):\n        raise Stop('early stopping signal')\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["net.py:Net", "--input", "8"], capsys)
    assert code == 1 and "Traceback" not in out + err
    assert "net.py:14:9: SHP008 Stop: early stopping signal" in out


def test_an_exit_outside_the_forward_still_leaves_the_other_models_checked(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch,
                                                                           capsys: pytest.CaptureFixture) -> None:
    """A state_dict hook (run by the checkpoint check, after the trace) that calls sys.exit."""
    import torch

    (tmp_path / "broken.py").write_text((ROOT / CARELESS / "broken.py").read_text())
    (tmp_path / "hooked.py").write_text(
        "import sys\nimport torch.nn as nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.fc = nn.Linear(8, 2)\n"
        "        self._register_state_dict_hook(lambda *a: sys.exit(0))\n\n"
        "    def forward(self, x):\n        return self.fc(x)\n")
    torch.save({"fc.weight": torch.zeros(2, 8), "fc.bias": torch.zeros(2)}, tmp_path / "w.pt")
    (tmp_path / "pyproject.toml").write_text(
        '[[tool.shapecheck.models]]\ntarget = "hooked.py:Net"\ninput = "8"\ncheckpoint = "w.pt"\n'
        '[[tool.shapecheck.models]]\ntarget = "broken.py:Net"\ninput = "3x64x64"\n')
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["project"], capsys)
    assert code == 2
    assert "hooked.py:9:" in err and "checking Net called sys.exit(0)" in err
    assert "broken.py" in out and "SHP001" in out  # the next model was still checked
    assert "1 of 2 model(s) could not be checked" in err
