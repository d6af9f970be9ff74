"""``--fix`` and ``--diff``: the source edits that resolve findings, and rewriting files safely.

Edits are computed from the report (rules attach a ``Fix`` to their finding); this module
only builds those records and applies them. A file is rewritten atomically (temporary file
in the same folder, then ``os.replace``), in its own encoding and line endings, and only
when the text under every edit is still what the analysis saw.
"""
from __future__ import annotations

import ast
import difflib
import os
import re
import tokenize
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shapecheck import files
from shapecheck.errors import UsageError
from shapecheck.report import Finding, Fix, Layer, Report, Shape
from shapecheck.sources import Argument, Span, digest, digest_seen, forget, method_call, parse_expression

_LINE_END = re.compile(r"\r\n|\r|\n")


# -- building edits --------------------------------------------------------------------------
def in_features(layer: Layer, received: int, shape: Shape) -> Fix | str:
    """Rewrite ``Linear(<in_features>, ...)`` in the author's style, or say why it cannot.

    ``20 * 12 * 12`` becomes ``20 * 13 * 13`` (the real map), ``2880`` becomes ``3380``.
    """
    arg: Argument | None = layer.argument("in_features")
    if arg is None:
        return "the Linear's source was not found"
    if not arg.literal:
        return f"in_features is `{arg.text}`, not a literal expression --fix understands"
    return _fix(arg.span, arg.text, _styled(arg.text, received, shape))


def flatten_call(layer: Layer) -> Fix | str:
    """``x.view(-1, N)``, ``x.view(BATCH, -1)`` and their reshapes -> ``x.flatten(1)``."""
    call = method_call(layer.called_at, layer.name) if layer.called_at else None
    if call is None or call.method not in ("view", "reshape"):
        return "the call is not x.view(...) or x.reshape(...)"
    if len(call.args) != 2 or call.has_keywords or "-1" not in (a.text.replace(" ", "") for a in call.args):
        return f"only view(-1, N) and view(B, -1) are rewritten, this call has ({', '.join(a.text for a in call.args)})"
    old = _text_of(call.tail)
    return _fix(call.tail, old, ".flatten(1)") if old else "the source file could not be read"


def add_import(path: str, statement: str) -> Fix | str:
    """Insert ``statement`` after the file's last top-level import (after its docstring otherwise)."""
    try:
        text, _, _ = read(path)
        tree = ast.parse(text)
    except (OSError, SyntaxError, ValueError) as exc:
        return f"{path} could not be parsed ({type(exc).__name__})"
    imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    docstring = tree.body[:1] if tree.body and isinstance(tree.body[0], ast.Expr) \
        and isinstance(tree.body[0].value, ast.Constant) and isinstance(tree.body[0].value.value, str) else []
    after = (imports or docstring)[-1].end_lineno if imports or docstring else 0
    newline = m.group(0) if (m := _LINE_END.search(text)) else "\n"
    return Fix(path, after + 1, 1, after + 1, 1, "", statement + newline)


def _styled(old: str, received: int, shape: Shape) -> str:
    tree = parse_expression(old)
    dims = shape[1:] if len(shape) > 2 else ()
    if isinstance(tree, ast.BinOp) and isinstance(tree.op, ast.Mult) and dims:
        spaced = re.search(r"\s\*\s", old) is not None
        return (" * " if spaced else "*").join(map(str, dims))
    return str(received)


def _fix(span: Span, old: str, new: str) -> Fix | str:
    if new == old:  # an edit that changes nothing is no fix, and must not be listed as one
        return f"the rewrite of `{old}` would leave it as it is"
    return Fix(span.path, span.line, span.column, span.end_line, span.end_column, old, new)


def _text_of(span: Span) -> str | None:
    try:
        text, _, _ = read(span.path)
    except OSError:
        return None
    start, end = _offset(text, span.line, span.column), _offset(text, span.end_line, span.end_column)
    return text[start:end]


# -- applying edits --------------------------------------------------------------------------
# A fix can uncover the next finding (a folded view hid a wrong in_features), so fixing
# repeats until nothing changes; each round edits different text, so this bound is generous.
ROUNDS = 5


def until_clean(run: Callable[..., Report], log: Callable[[Change], None], roots: tuple[str, ...]) -> Report:
    """Analyze, write every fix, analyze the rewritten files again; repeat while fixes apply.

    ``run(fresh=True)`` must import the user's files anew. Only files under ``roots``
    (``project_roots``) are written; a read-only one stops the run before any is.
    """
    report = run()
    for _ in range(ROUNDS):
        changes = plan(report.findings, roots)
        if not changes:
            break
        for change in changes:
            if files.read_only(change.path):
                raise UsageError(f"{change.path} is read-only; --fix leaves it as it is: make it writable, "
                                 "or apply the fix by hand (--diff shows it)")
        for change in changes:
            write(change)
            log(change)
        forget()
        report = run(fresh=True)
    return report

@dataclass(frozen=True)
class Change:
    path: str
    before: str
    after: str
    applied: tuple[Fix, ...]

    def diff(self) -> str:
        return "".join(difflib.unified_diff(
            self.before.splitlines(keepends=True), self.after.splitlines(keepends=True),
            fromfile=f"a/{self.path}", tofile=f"b/{self.path}"))


def plan(findings: Iterable[Finding], roots: tuple[str, ...]) -> list[Change]:
    """One Change per file under ``roots``: every fix whose text is still in place."""
    by_path: dict[str, list[Fix]] = defaultdict(list)
    for finding in findings:
        if finding.fix is not None and finding.fix not in by_path[finding.fix.path] \
                and inside(finding.fix.path, roots):
            by_path[finding.fix.path].append(finding.fix)
    changes = []
    for path, fixes in sorted(by_path.items()):
        before, _, _ = read(path)
        after, applied = apply(before, fixes)
        if applied:
            changes.append(Change(path, before, after, applied))
    return changes


def project_roots(target: str | None) -> tuple[str, ...]:
    """The folders whose files --fix may change: the git work tree and the folder of the
    nearest pyproject.toml above the working directory, and the target file's folder. A
    package installed elsewhere (on PYTHONPATH, in another environment) is not the project."""
    here = os.path.abspath(os.getcwd())
    roots = [os.path.dirname(os.path.abspath(target))] if target else []
    folder = here
    while True:
        if os.path.exists(os.path.join(folder, "pyproject.toml")) or os.path.exists(os.path.join(folder, ".git")):
            roots.append(folder)
            break
        parent = os.path.dirname(folder)
        if parent == folder:
            roots.append(here)  # no project marker above: the working directory is the project
            break
        folder = parent
    return tuple(os.path.realpath(root) for root in roots)


def inside(path: str, roots: tuple[str, ...]) -> bool:
    real = os.path.realpath(path)
    return any(os.path.commonpath([real, root]) == root for root in roots)


def apply(text: str, fixes: Iterable[Fix]) -> tuple[str, tuple[Fix, ...]]:
    applied: list[Fix] = []
    taken_from = len(text) + 1
    for fix in sorted(fixes, key=lambda f: (f.line, f.column), reverse=True):
        start, end = _offset(text, fix.line, fix.column), _offset(text, fix.end_line, fix.end_column)
        if end > taken_from or text[start:end] != fix.old:
            continue  # overlaps a later edit, or the file changed since the analysis
        text = text[:start] + fix.new + text[end:]
        taken_from = start
        applied.append(fix)
    return text, tuple(reversed(applied))


def read(path: str) -> tuple[str, str, bytes]:
    """The text, its encoding (PEP 263 cookie or BOM), and the raw bytes."""
    with open(path, "rb") as handle:
        raw = handle.read()
    encoding, _ = tokenize.detect_encoding(iter(raw.splitlines(keepends=True)).__next__)
    # Decoding bytes keeps \r\n and \r as they are; "utf-8-sig" keeps the BOM on write.
    return raw.decode(encoding), encoding, raw


def write(change: Change) -> None:
    """Rewrite the file (``files.write``: through a link, keeping hard links, owner and
    mode), in its encoding and line endings, if it still holds what the analysis read."""
    _, encoding, raw = read(change.path)
    seen = digest_seen(change.path)
    if raw.decode(encoding) != change.before or (seen is not None and seen != digest(raw)):
        raise UsageError(f"{change.path} changed since shapecheck read it; nothing written to it: run again")
    files.write(change.path, change.after.encode(encoding))


def _offset(text: str, line: int, column: int) -> int:
    """Character offset of a 1-based (line, column), counting \\r\\n, \\r and \\n as Python does."""
    starts = [0] + [m.end() for m in _LINE_END.finditer(text)]
    return starts[line - 1] + column - 1
