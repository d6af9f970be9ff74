"""Text from the user's code (module names, source lines, messages that quote them) made
safe for where it is shown: a terminal, or a Markdown document.

A name or a comment can hold ESC (terminal colours, cursor moves), OSC sequences (window
titles, hyperlinks), BEL, a carriage return that overwrites the line, or bidirectional
controls that show code in another order than it runs (CVE-2021-42574). Shown escaped
(``\\x1b``, ``\\u202e``), they are visible and do nothing.
"""
from __future__ import annotations

import re

# Controls (C0, DEL, C1), bidirectional marks, embeddings, overrides and isolates, and the
# line and paragraph separators; newline and tab are the text's own.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal(text: str) -> str:
    """``text`` with every control and bidi character written as an escape."""
    return _UNSAFE.sub(_escaped, text)


def one_line(text: str) -> str:
    """``terminal``, with newlines and tabs escaped too: for one table cell or one field."""
    return terminal(text).replace("\n", "\\n").replace("\t", "\\t")


def markdown_code(text: str) -> str:
    """``text`` as an inline code span in a Markdown table or list: one line, pipes escaped
    (GitHub splits table cells on them even inside code), and fenced with more backticks than
    it holds, so that it cannot close the span and let raw HTML through."""
    text = one_line(text).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{padding}{text}{padding}{fence}"


def markdown_text(text: str) -> str:
    """``text`` as plain Markdown: one line, no HTML tag or entity, no table-breaking pipe."""
    return one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")



