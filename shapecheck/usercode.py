"""Running the user's code (their module's import, their constructor, their forward) so that
nothing it does can make a check read as passed.

- ``sys.exit()`` anywhere in it raises ``SystemExit``, which shapecheck catches where the
  code runs and reports with the file and line. ``os._exit()`` would end the process on
  the spot, with the status the model chose: while the command line runs user code it is
  replaced by a function that raises ``ModelExited`` instead (our own process, so the
  switch is ours to make; the Python API never makes it).
- What the code prints goes to stderr while it runs, so that ``--format json`` or ``sarif``
  on stdout stays valid.
- ``sys.argv`` is ``[the user's file]`` while it runs: a script that parses its arguments at
  import sees no shapecheck flags.
- ``--timeout`` arms a timer (``deadline``) that ends a forward that never returns with a
  finding at the layer it was in.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from typing import Any, NoReturn


class ModelExited(BaseException):
    """The model's code called ``os._exit``: raised instead, while the command line runs it.

    A BaseException, as SystemExit is: the model's own ``except Exception`` must not swallow it.
    """

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.code = status


def exit_call(exc: BaseException) -> str | None:
    """``sys.exit(0)`` or ``os._exit(3)``: what the user's code called, if it exited."""
    if isinstance(exc, ModelExited):
        return f"os._exit({exc.code})"
    if isinstance(exc, SystemExit):
        return f"sys.exit({exc.code!r})" if exc.code is not None else "sys.exit()"
    return None


def escapes(exc: BaseException) -> bool:
    """The exceptions that must end shapecheck itself: the user's Ctrl-C, a generator's close."""
    return isinstance(exc, KeyboardInterrupt | GeneratorExit)


def _raise_exit(status: int) -> NoReturn:
    raise ModelExited(status)


@contextmanager
def running(path: str | None) -> Iterator[None]:
    """The command line's frame around the user's code: stdout to stderr, ``sys.argv`` as if
    ``path`` ran alone, ``os._exit`` raising ``ModelExited``; all as found afterwards."""
    argv, real_exit = sys.argv, os._exit
    sys.argv = [path or "model.py"]
    os._exit = _raise_exit  # type: ignore[assignment]
    try:
        with redirect_stdout(sys.stderr):
            yield
    finally:
        sys.argv = argv
        os._exit = real_exit


def describe(exc: BaseException, doing: str, where: Any) -> str:
    """One line for a user's exit: ``models/net.py:12: importing net called sys.exit(0) ...``."""
    at = f"{where}: " if where else ""
    return (f"{at}{doing} called {exit_call(exc)}: the file runs script code when it is imported or "
            "built; put that code under `if __name__ == \"__main__\":`, or point shapecheck at the "
            "module that only defines the model")


class TimedOut(BaseException):
    """The analysis passed its ``--timeout``: raised by a timer signal wherever the code was,
    an endless loop in the user's forward included. A BaseException: the user's own
    ``except Exception`` must not swallow it."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise ``TimedOut`` in this thread once ``seconds`` have passed (SIGALRM: the command
    line's main thread only; elsewhere, and with no limit, nothing is armed)."""
    import signal
    import threading

    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise TimedOut(seconds)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
