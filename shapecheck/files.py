"""Writing files so that no reader ever sees half of one: a report (``--output-file``) and the
sources ``--fix`` rewrites.

A CI job that uploads ``report.html`` as an artifact, or a browser refreshing it while the
next run writes it, gets the old file or the new one: the text goes to a temporary file in
the same folder, which then replaces the target in one ``os.replace``.
"""
from __future__ import annotations

import os
import secrets
import shutil
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
    try:
        replace_atomically(path, text.encode("utf-8"))
    except OSError as exc:
        raise UsageError(f"{option} {path}: {exc.strerror or exc}") from None


def replace_atomically(path: str, data: bytes, like: str | None = None) -> None:
    """``path`` holds ``data`` or what it held before, never a part: a temporary file in the
    same folder, then one ``os.replace``. ``like`` is a file whose permissions the new one
    takes (a source file --fix rewrites); otherwise it gets a new file's, under the umask."""
    folder = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(folder, f".shapecheck-{secrets.token_hex(6)}.tmp")
    # os.open applies the umask itself: reading it (os.umask) would change it for every thread.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if like is not None:
            shutil.copymode(like, temporary)
        os.replace(temporary, path)
    except BaseException:  # Ctrl-C too: leave no temporary file behind
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
