"""Refresh the real runs pasted in README.md and docs/*.md: ``python benchmarks/write_docs.py``.

A page marks a run with ``<!-- run: shapecheck ARGS -->`` on its own line; everything up
to the next ``<!-- end -->`` is replaced by a fenced block holding ``$ shapecheck ARGS`` and
what the command printed (stdout and stderr, as a terminal shows them), run from the
repository root. tests/test_docs.py fails when a page is out of date.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- run: (?P<command>[^\n]*?) -->\n)(?P<body>.*?)(<!-- end -->)", re.S)


def output(command: str) -> str:
    from shapecheck.cli import main

    argv = shlex.split(command)
    assert argv[0] == "shapecheck", command
    buffer = io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            main(argv[1:])
    finally:
        os.chdir(cwd)
    return buffer.getvalue()


def refresh(text: str) -> str:
    def block(match: re.Match[str]) -> str:
        shown = output(match.group("command")).rstrip("\n")
        return f"{match.group(1)}```\n$ {match.group('command')}\n{shown}\n```\n{match.group(4)}"

    return BLOCK.sub(block, text)


def main() -> int:
    for page in PAGES:
        text = page.read_text()
        fresh = refresh(text)
        if fresh != text:
            page.write_text(fresh)
            print(f"updated {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
