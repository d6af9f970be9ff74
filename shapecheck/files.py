"""Writing a report to a file (``--output-file``) so that no reader ever sees half of it.

A CI job that uploads ``report.html`` as an artifact, or a browser refreshing it while the
next run writes it, gets the old file or the new one: the text goes to a temporary file in
the same folder, which then replaces the target in one ``os.replace``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from shapecheck.errors import UsageError


def check_writable(path: str, option: str = "--output-file") -> None:
    """Fail before the analysis, not after it, when ``path`` cannot be written."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise UsageError(f"{option} {path}: is a folder; name a file, e.g. {target / 'report.html'}")
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{option} {path}: the folder {folder} is not writable")


def write_atomic(path: str, text: str, option: str = "--output-file") -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; a failure is a one-line UsageError."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, temporary = tempfile.mkstemp(prefix=".shapecheck-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise UsageError(f"{option} {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it 0600; a report is for sharing
        os.replace(temporary, path)
    except BaseException as exc:  # Ctrl-C too: leave no temporary file behind
        if os.path.exists(temporary):
            os.unlink(temporary)
        if isinstance(exc, OSError):
            raise UsageError(f"{option} {path}: {exc.strerror or exc}") from None
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
