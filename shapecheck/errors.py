"""Errors that end a run before any analysis: the user's invocation is wrong."""
from __future__ import annotations


class UsageError(Exception):
    """A one-line, actionable message about bad input; the CLI exits with code 2."""
