"""Output of ``shapecheck sizes``: accepted sizes, the minimum, and sizes that lose pixels."""
from __future__ import annotations

import json
from dataclasses import asdict

from shapecheck.sizes import Drop, Sizes, ranges


def render(result: Sizes, model: str, fmt: str = "text") -> str:
    if fmt == "json":
        data = {"model": model, **asdict(result), "minimum": result.minimum,
                "open_ended": result.open_ended, "period": result.period, "how": _how(result)}
        data["lossy"] = {str(k): [asdict(d) for d in v] for k, v in result.lossy.items()}
        return json.dumps(data, indent=2) + "\n"
    return "\n".join(_text(result, model)) + "\n"


def _text(result: Sizes, model: str) -> list[str]:
    free = _free(result.template)
    lines = [f"{model}: input {result.template}, {free} from {result.low} to {result.high}", f"how: {_how(result)}"]
    if not result.accepted:
        return [*lines, f"accepted: none; no {free} from {result.low} to {result.high} runs"]
    period = result.period
    if result.open_ended:
        every = "any size" if result.minimum == 1 else f"any {free} >= {result.minimum}"
        lines.append(f"accepted: {every} (every size up to {result.high} runs)")
    elif period is not None:
        start, step = period
        multiples = f" (the multiples of {step})" if start % step == 0 else ""
        lines.append(f"accepted: {free} = {start} + {step}k, every {_ordinal(step)} size from {start}{multiples}, "
                     f"up to {result.high}")
    else:
        listed = ", ".join(map(str, result.accepted)) if len(result.accepted) <= 12 else ranges(result.accepted)
        lines.append(f"accepted: {free} in {{{listed}}}")
    lines.append(f"minimum input: {result.template_at(result.minimum)}")  # type: ignore[arg-type]
    lossless = [s for s in result.accepted if s not in result.lossy]
    lines.append(f"no pixels lost: {_listed(lossless)}" if lossless else "no pixels lost: none")
    if result.lossy and len(result.lossy) <= 12:
        lines.append("lose pixels to floor division:")
        for size, drops in sorted(result.lossy.items()):
            lines.append(f"  {size}: " + "; ".join(f"{d.layer} {_drop(d)}" for d in drops))
    elif result.lossy:  # thousands of sizes: by layer
        lines.append("lose pixels to floor division, by layer (the sizes, and the first of them):")
        for layer, sizes in _by_layer(result).items():
            first = next(d for d in result.lossy[sizes[0]] if d.layer == layer)
            lines.append(f"  {layer}: {_listed(sizes)}; at {sizes[0]}: {_drop(first)}")
    return lines


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _drop(drop: Drop) -> str:
    return f"{'x'.join(map(str, drop.size))} -> {'x'.join(map(str, drop.out))} drops {_pixels(drop.pixels)}"


def _how(result: Sizes) -> str:
    if result.method == "algebra":
        shown = ", ".join(map(str, result.verified[:12])) + (", ..." if len(result.verified) > 12 else "")
        return (f"the size algebra of one trace, checked by {len(result.verified)} forward passes on "
                f"{result.device} at the accepted set's edges and inside and outside it ({shown}): all agree")
    why = f" (the size algebra could not serve: {result.why_sweep})" if result.why_sweep else ""
    return f"each size checked by a forward pass on the {result.device} device, one per size{why}"


def _by_layer(result: Sizes) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for size, drops in sorted(result.lossy.items()):
        for drop in drops:
            sizes = found.setdefault(drop.layer, [])
            if not sizes or sizes[-1] != size:  # a layer called twice drops at one size once
                sizes.append(size)
    return found


def _listed(sizes: list[int], most: int = 8) -> str:
    """``{1-3, 5, 7-9}``, cut after ``most`` runs with the count of sizes."""
    runs = ranges(sizes).split(", ")
    shown = ", ".join(runs[:most]) + (f", ... ({len(sizes)} sizes)" if len(runs) > most else "")
    return "{" + shown + "}"


def _free(template: str) -> str:
    letters = [p for p in template.split("x") if p.isalpha()]
    return ", ".join(letters) if len(letters) > 1 else letters[0]


def _pixels(pixels: tuple[int, ...]) -> str:
    if len(pixels) == 2:
        rows, cols = pixels
        return f"{rows} row{'s' * (rows != 1)} and {cols} column{'s' * (cols != 1)}"
    return " x ".join(map(str, pixels)) + " pixels"
