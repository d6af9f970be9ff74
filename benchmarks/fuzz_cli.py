"""Fuzz the command line's inputs: --input spellings and [tool.shapecheck] values, drawn by
hypothesis. Every run must end in exit 0, 1 or 2, with no traceback and no "internal error".

    .venv/bin/python benchmarks/fuzz_cli.py                  # 3000 spellings, 3000 configurations
    .venv/bin/python benchmarks/fuzz_cli.py --examples 150   # the CI sample (tests/test_cli.py)

Each case runs ``shapecheck.cli.main`` in this process (torch is imported once) on a small
model in a temporary folder; a failing case is printed, shrunk, with its output.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shapecheck.cli import main  # noqa: E402

MODEL = """import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(x.flatten(1)[:, :8])
"""

# Pieces a user types, and pieces a careless or hostile one does.
PIECES = ["3", "8", "64", "0", "-1", "x", ",", ":", "int64", "float16", "bogus", "[", "]", "(", ")", "{", "}", "=",
          "mask", "image:", " ", "9" * 25, "1e3", "é", "\x1b", "\u202e", "\n", "'", '"', "*", "HxW", "H", "..."]
spellings = st.lists(st.sampled_from(PIECES), min_size=1, max_size=12).map("".join) | st.text(max_size=30)

KEYS = ["target", "input", "output", "batch", "dtype", "mode", "max_params", "max_macs", "max_activation_memory",
        "select", "ignore", "checkpoint", "timeout", "zero_config", "bogus_key"]
toml_values = st.one_of(
    st.integers(-10**20, 10**20).map(str), st.floats(allow_nan=True, allow_infinity=True).map(
        lambda f: "nan" if f != f else ("inf" if f == float("inf") else "-inf" if f == float("-inf") else repr(f))),
    st.booleans().map(lambda b: "true" if b else "false"),
    spellings.map(lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'),
    st.lists(st.sampled_from(['"SHP0"', '"3x8"', "1", '"x"']), max_size=3).map(lambda v: "[" + ", ".join(v) + "]"),
)


def run(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue() + err.getvalue()


def acceptable(code: int, output: str) -> bool:
    return code in (0, 1, 2) and "Traceback" not in output and "internal error" not in output


def fuzz(examples: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="shapecheck-fuzz-"))
    (folder / "net.py").write_text(MODEL)
    os.chdir(folder)
    sys.path.insert(0, str(folder))
    checked = settings(max_examples=examples, deadline=None, database=None,
                       suppress_health_check=list(HealthCheck))

    @checked
    @given(spellings)
    def input_spellings(spec: str) -> None:
        code, output = run(["net.py:Net", "--input", spec])
        assert acceptable(code, output), f"--input {spec!r}: exit {code}\n{output}"

    @checked
    @given(st.dictionaries(st.sampled_from(KEYS), toml_values, max_size=5), st.booleans())
    def configurations(entry: dict[str, str], in_model: bool) -> None:
        body = "".join(f"{key} = {value}\n" for key, value in entry.items())
        model = 'target = "net.py:Net"\ninput = "8"\n'
        text = (f"[[tool.shapecheck.models]]\n{model}{body}" if in_model
                else f"[tool.shapecheck]\n{body}[[tool.shapecheck.models]]\n{model}")
        (folder / "pyproject.toml").write_text(text)
        code, output = run(["project"])
        assert acceptable(code, output), f"pyproject.toml:\n{text}\nexit {code}\n{output}"

    input_spellings()
    configurations()
    print(f"{examples} --input spellings and {examples} configurations: every run exited 0, 1 or 2, "
          "with no traceback and no internal error")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=3000)
    fuzz(parser.parse_args().examples)
