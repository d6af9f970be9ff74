"""Writing files so that no reader ever sees half of one: a report (``--output-file``) and the
sources ``--fix`` rewrites.

A CI job that uploads ``report.html`` as an artifact, or a browser refreshing it while the
next run writes it, gets the old file or the new one: the text goes to a temporary file in
the same folder, which then replaces the target in one ``os.replace``. What the path names
keeps its kind: a link stays a link, a device stays a device, hard links stay joined.
"""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from shapecheck.errors import UsageError


def check_writable(path: str, option: str = "--output-file") -> None:
    """Fail before the analysis, not after it, when ``path`` cannot be written."""
    target = Path(os.path.realpath(path))  # through a link: its target is what gets written
    folder = target.parent
    if target.is_dir():
        raise UsageError(f"{option} {path}: is a folder; name a file, e.g. {Path(path) / 'report.html'}")
    if target.exists() and not target.is_file():  # /dev/stdout, a FIFO: written in place
        if not os.access(target, os.W_OK):
            raise UsageError(f"{option} {path}: is not writable")
        return
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{option} {path}: the folder {folder} is not writable")


def write_atomic(path: str, text: str, option: str = "--output-file") -> None:
    """Write ``text`` (UTF-8) to ``path`` (``write``); a failure is a one-line UsageError."""
    try:
        write(path, text.encode("utf-8"))
    except OSError as exc:
        raise UsageError(f"{option} {path}: {exc.strerror or exc}") from None


def write(path: str, data: bytes) -> None:
    """Put ``data`` in the file ``path`` names, without changing what kind of file it is.

    - A symbolic link stays a link: its target gets the data.
    - A file that is not a regular one (``/dev/stdout``, a FIFO, a device) is written as it
      is: replacing it would turn it into a regular file.
    - A file with several hard links is rewritten in place, keeping its inode: replacing
      it would split the links. The one case that is not atomic.
    - Any other file is replaced atomically (``replace_atomically``), keeping its
      permissions and, where the process may set it, its owner.
    """
    real = os.path.realpath(path)
    try:
        found = os.stat(real)
    except FileNotFoundError:
        found = None
    if found is not None and not stat.S_ISREG(found.st_mode):
        with open(real, "wb") as handle:
            handle.write(data)
        return
    if found is not None and found.st_nlink > 1:
        with open(real, "r+b") as handle:
            handle.write(data)
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())
        return
    replace_atomically(real, data, found)


def replace_atomically(path: str, data: bytes, like: os.stat_result | None = None) -> None:
    """``path`` holds ``data`` or what it held before, never a part: a temporary file in the
    same folder, then one ``os.replace``. ``like`` is the stat of the file it replaces, whose
    mode and owner the new one takes; otherwise it gets a new file's, under the umask."""
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
            os.chmod(temporary, stat.S_IMODE(like.st_mode))
            _keep_owner(temporary, like)
        os.replace(temporary, path)
    except BaseException:  # Ctrl-C too: leave no temporary file behind
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _keep_owner(path: str, like: os.stat_result) -> None:
    """The replaced file's owner and group, where this process may give them (as root, or
    the same owner with another of its groups); otherwise the new file stays the writer's."""
    now = os.stat(path)
    if (now.st_uid, now.st_gid) != (like.st_uid, like.st_gid):
        try:
            os.chown(path, like.st_uid, like.st_gid)
        except PermissionError:
            pass


def read_only(path: str) -> bool:
    """No one may write the file (0444): a user's way of saying it must not change, which
    root would otherwise override."""
    return not os.stat(os.path.realpath(path)).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
