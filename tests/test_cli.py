"""The command line: golden output, exit codes, and one-line usage errors."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shapecheck.cli import main

GOLDEN = Path(__file__).parent / "golden"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_quiz_c_text_output_is_golden(in_repo, capsys):
    code, out, err = run(capsys, "examples/quiz_c.py:Net", "--input", "3x64x64")
    assert code == 1 and err == ""
    assert out == (GOLDEN / "quiz_c.txt").read_text()


def test_clean_model_exits_zero(in_repo, capsys):
    code, out, _ = run(capsys, "examples/quiz_a.py:Net", "--input", "3x64x64", "--show-source")
    assert code == 0
    assert "fc1 (Linear)" in out and "examples/quiz_a.py:18" in out


def test_json_schema_fields(in_repo, capsys):
    code, out, _ = run(capsys, "examples/quiz_c.py:Net", "-i", "3x64x64", "--format", "json")
    data = json.loads(out)
    assert code == 1
    assert set(data) >= {"model", "input", "layers", "totals", "findings"}
    assert data["input"] == [{"shape": [3, 64, 64], "dtype": "float32", "name": None, "exact": False,
                             "batch_dim": 0}]
    finding = data["findings"][0]
    assert {k: finding[k] for k in ("code", "severity", "path", "line", "column", "layer")} == {
        "code": "SHP001", "severity": "error", "path": "examples/quiz_c.py", "line": 11,
        "column": 9, "layer": "fc1"}
    assert data["totals"]["flops"] == 2 * data["totals"]["macs"]


def test_select_and_ignore(in_repo, capsys):
    _, out, _ = run(capsys, "examples/quiz_c.py:Net", "-i", "3x64x64", "--ignore", "SHP003")
    assert "SHP001" in out and "SHP003" not in out
    code, out, _ = run(capsys, "examples/quiz_c.py:Net", "-i", "3x64x64", "--select", "SHP003")
    assert "SHP001" not in out and "SHP003" in out and code == 1


@pytest.mark.parametrize("argv, message", [
    (["examples/nope.py:Net", "-i", "3x32x32"], "no such file: examples/nope.py"),
    (["examples/quiz_a.py:Nett", "-i", "3x64x64"], "has no 'Nett'; nn.Module classes in it: Net"),
    (["examples/quiz_a.py:Net", "-i", "3xx64"], "invalid input spec '3xx64'"),
    (["examples/quiz_a.py:Net", "-i", "3x64x64", "--dtype", "float99"], "unknown dtype 'float99'"),
    (["examples/quiz_a.py:Net(n=1)", "-i", "3x64x64"], "unexpected keyword argument 'n'"),
    (["examples/quiz_a.py:Net(n=open('x'))", "-i", "3x64x64"], "must be literals"),
    (["no.such.module:Net", "-i", "3"], "no module named 'no.such.module'"),
    (["examples/quiz_a.py", "-i", "3"], "invalid target"),
    (["examples/quiz_a.py:Net"], "Missing option '-i' / '--input'"),
    (["examples/quiz_c.py:Net", "-i", "3x64x64", "--select", "XYZ"], "--select XYZ matches no rule; the codes are SHP001"),
    (["examples/quiz_c.py:Net", "-i", "3x64x64", "--ignore", "SHP1,SHP999"], "--ignore SHP999 matches no rule"),
    (["examples/quiz_a.py:Net", "-i", "3x64x64", "--output", "10x"], "invalid output spec '10x'"),
    (["tests/fixtures/two_inputs.py:Net", "-i", "8"],
     "Net.forward(x, mask) takes 2 inputs (x, mask) but 1 was given; pass one --input per argument"),
])
def test_usage_errors_are_one_line_with_exit_2(in_repo, capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("shapecheck: error: ")
    assert message in err


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_constructor_arguments_missing_are_named(tmp_path, capsys, monkeypatch):
    _write(tmp_path, {"m.py": """
        import torch.nn as nn
        class Classifier(nn.Module):
            def __init__(self, num_classes, width=8):
                super().__init__()
                self.fc = nn.Linear(4, num_classes)
            def forward(self, x):
                return self.fc(x)
    """})
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "m.py:Classifier", "-i", "4")
    assert code == 2 and "Classifier needs arguments: num_classes" in err
    assert "m.py:Classifier(num_classes=...)" in err
    code, out, _ = run(capsys, "m.py:Classifier(num_classes=10)", "-i", "4")
    assert code == 0 and "[2, 10]" in out


def test_import_error_shows_the_users_line(tmp_path, capsys, monkeypatch):
    _write(tmp_path, {"bad.py": """
        import torch.nn as nn
        from helpers import missing_thing
    """, "helpers.py": "x = 1\n"})
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "bad.py:Net", "-i", "3")
    assert code == 2 and err.count("\n") == 1
    assert "bad.py:3:1: importing bad.py raised ImportError" in err
    assert "(`from helpers import missing_thing`)" in err


def test_verbose_shows_the_traceback(tmp_path, capsys, monkeypatch):
    _write(tmp_path, {"bad.py": "raise ValueError('boom')\n"})
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "bad.py:Net", "-i", "3", "--verbose")
    assert code == 2 and "Traceback" in err and "boom" in err


def test_a_package_file_imports_its_siblings_and_its_package(tmp_path, capsys, monkeypatch):
    _write(tmp_path, {
        "proj/mypkg/__init__.py": "",
        "proj/mypkg/blocks.py": """
            import torch.nn as nn
            def block(c_in, c_out):
                return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU())
        """,
        "proj/mypkg/models/__init__.py": "",
        "proj/mypkg/models/net.py": """
            import torch.nn as nn
            from mypkg.blocks import block
            from ..blocks import block as same_block
            class Net(nn.Module):
                def __init__(self, width=4):
                    super().__init__()
                    self.body = block(3, width)
                    self.head = nn.Linear(width * 8 * 8, 2)
                def forward(self, x):
                    return self.head(self.body(x).flatten(1))
        """,
        "scripts/train_helpers.py": "WIDTH = 4\n",
        "scripts/script_model.py": """
            import torch.nn as nn
            from train_helpers import WIDTH
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(WIDTH, 2)
                def forward(self, x):
                    return self.fc(x)
        """,
    })
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "proj/mypkg/models/net.py:Net(width=4)", "-i", "3x8x8")
    assert code == 0 and "[2, 2]" in out
    code, out, _ = run(capsys, "scripts/script_model.py:Net", "-i", "4")
    assert code == 0 and "fc (Linear)" in out
    monkeypatch.syspath_prepend(str(tmp_path / "proj"))
    code, out, _ = run(capsys, "mypkg.models.net:Net", "-i", "3x8x8")
    assert code == 0


def test_constructor_that_reads_values_still_gets_meta_weights(tmp_path, capsys, monkeypatch):
    _write(tmp_path, {"m.py": """
        import torch, torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                width = int(torch.tensor([6]).sum().item())
                self.fc = nn.Linear(4, width)
            def forward(self, x):
                return self.fc(x)
    """})
    monkeypatch.chdir(tmp_path)
    from shapecheck.target import build, parse_target

    built = build(parse_target("m.py:Net"))
    assert built.device == "meta" and built.model.fc.weight.device.type == "meta"
    code, out, _ = run(capsys, "m.py:Net", "-i", "4")
    assert code == 0 and "[2, 6]" in out and "built on CPU" not in out


def test_constructor_that_reads_its_own_weights_is_built_on_cpu(tmp_path, capsys, monkeypatch):
    _write(tmp_path, {"m.py": """
        import torch, torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 6)
                self.scale = float(self.fc.weight.detach().abs().max()) + 1.0
            def forward(self, x):
                return self.fc(x) * self.scale
    """})
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "m.py:Net", "-i", "4")
    assert code == 0 and "[2, 6]" in out and "built on CPU, with 120 B of real parameters" in out


def test_importing_the_cli_does_not_import_torch():
    probe = ("import sys, shapecheck.cli; assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'));"
             # The lazy names must survive their modules being imported directly.
             "import shapecheck.analysis, shapecheck.report, shapecheck;"
             "assert shapecheck.analyze is shapecheck.analysis.analyze and shapecheck.Report is shapecheck.report.Report")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert main(["--help"]) == 0


def test_the_console_script_runs_without_torchvision(in_repo):
    probe = ("import sys, runpy; sys.argv = ['shapecheck', 'examples/quiz_a.py:Net', '-i', '3x64x64'];"
             "from shapecheck.cli import main; code = main();"
             "assert 'torchvision' not in sys.modules, 'the CLI imported torchvision'; sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    result = subprocess.run([sys.executable, "-m", "shapecheck", "examples/quiz_b.py:Net", "-i", "3x64x64"],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "SHP001" in result.stdout


def test_diff_with_nothing_to_change_says_why_in_one_line(in_repo, capsys):
    code, out, err = run(capsys, "examples/one_layer.py:OneLayer", "-i", "3x32x32", "--diff")
    assert code == 0 and out == "" and err == "nothing to change: no finding\n"
    code, out, err = run(capsys, "examples/quiz_a.py:Net", "-i", "3x64x64", "--diff")
    assert code == 0 and out == "" and err.startswith("nothing to change: no finding has a fix") and err.count("\n") == 1


def test_big_tables_fold_loops_cut_long_cells_and_can_hide_functional_rows(in_repo, capsys):
    code, out, _ = run(capsys, "tests/fixtures/loop_model.py:Net", "-i", "3x8x8")
    assert code == 0 and "relu (F.relu) x12" in out and "add (Tensor.add) x12" in out
    assert out.count("(F.relu)") == 1
    code, out, _ = run(capsys, "tests/fixtures/loop_model.py:Net", "-i", "3x8x8", "--no-functional")
    assert "(F.relu)" not in out and "transpose" not in out and "rnn (LSTM)" in out


def test_a_cell_with_many_shapes_is_cut_with_the_count():
    from shapecheck.render.text import _cell

    text = ", ".join(["[2, 64, 16]"] * 12)
    assert _cell(text).endswith("], ... (12 shapes)") and len(_cell(text)) <= 70


@pytest.mark.parametrize(("spec", "says"), [
    ("3x99999999999999999999x64", "elements per sample"),
    ("[" * 5000 + "3" + "]" * 5000, "brackets nest deeper than 16"),
    ("(3,64,64)", "reads as a tuple of 3 1-d tensors of sizes 3, 64, 64; for one tensor write 3x64x64"),
    ("[3, 64]", "reads as a list of 2 1-d tensors"),
])
def test_careless_input_specs_are_one_line_usage_errors(spec, says, in_repo, capsys):
    assert main(["examples/quiz_c.py:Net", "--input", spec]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1 and len(err) < 600
    assert "Traceback" not in err and "internal error" not in err


def test_fuzzed_inputs_and_configurations_end_in_0_1_or_2_without_a_traceback(in_repo):
    # The CI sample of benchmarks/fuzz_cli.py (3000 of each there), in its own process.
    result = subprocess.run([sys.executable, "benchmarks/fuzz_cli.py", "--examples", "150"], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "every run exited 0, 1 or 2" in result.stdout


DENOISER = """import torch.nn as nn


class Denoiser(nn.Module):
    def __init__(self):
        super().__init__()
        self.time = nn.Embedding(1000, 8)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x, timestep):
        return self.conv(x) + self.time(timestep)[:, :, None, None]
"""


def test_a_per_sample_scalar_input_is_written_scalar(tmp_path, monkeypatch, capsys):
    # A diffusion model's timestep: one integer per sample, so the tensor is [B].
    monkeypatch.chdir(tmp_path)
    (tmp_path / "denoise.py").write_text(DENOISER)
    assert main(["denoise.py:Denoiser", "--input", "3x16x16", "--input", "timestep=scalar:int64",
                 "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["input"][1] == {"shape": [], "dtype": "int64", "name": "timestep", "exact": False, "batch_dim": 0}
    assert report["outputs"] == [[2, 8, 16, 16]] and report["findings"] == []


def test_the_api_takes_an_empty_shape_as_a_per_sample_scalar():
    import torch

    import shapecheck

    namespace: dict = {}
    exec(DENOISER, namespace)
    model = namespace["Denoiser"]()
    report = shapecheck.analyze(model, {"x": "3x16x16", "timestep": ()}, batch=4)
    assert report.layers[0].input_shapes == ((4, 3, 16, 16), (4,))
    report = shapecheck.analyze(model, [torch.zeros(4, 3, 16, 16), torch.zeros(4, dtype=torch.int64)])
    assert report.layers[0].input_shapes == ((4, 3, 16, 16), (4,)) and report.findings == ()
