"""Pause Python's cyclic garbage collector for the length of one analysis or one build."""
from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """A trace allocates hundreds of thousands of short-lived objects, and each allocation
    burst triggers collections that walk every object still alive: in a process that keeps
    earlier reports (a test session, the 80-model sweep) those passes cost 13% of the run.
    Reference counting still frees everything at once; cycles wait for the next collection
    after the analysis. A collector the caller disabled stays disabled.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
