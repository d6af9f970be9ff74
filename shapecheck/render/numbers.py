"""Human-readable counts, byte sizes and shape lists."""
from __future__ import annotations


def count(n: int) -> str:
    """12,498,500 -> 12.50M; small numbers stay exact."""
    for unit, scale in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def shapes(items: object) -> str:
    """``[2, 20, 13, 13], [2, 5]``; empty for no shapes."""
    return ", ".join("[" + ", ".join(map(str, s)) + "]" for s in items)  # type: ignore[attr-defined]
