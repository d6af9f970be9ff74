"""Output of ``shapecheck sizes``: accepted sizes, the minimum, and sizes that lose pixels."""
from __future__ import annotations

import json
from dataclasses import asdict

from shapecheck.sizes import Sizes, ranges


def render(result: Sizes, model: str, fmt: str = "text") -> str:
    if fmt == "json":
        data = {"model": model, **asdict(result), "minimum": result.minimum,
                "open_ended": result.open_ended,
                "method": "sweep: one meta-device forward per size"}
        data["lossy"] = {str(k): [asdict(d) for d in v] for k, v in result.lossy.items()}
        return json.dumps(data, indent=2) + "\n"
    return "\n".join(_text(result, model)) + "\n"


def _text(result: Sizes, model: str) -> list[str]:
    free = _free(result.template)
    lines = [f"{model}: input {result.template}, {free} from {result.low} to {result.high}, "
             "each size checked by a forward pass on the meta device (a sweep, not symbolic shapes)"]
    if not result.accepted:
        return [*lines, f"accepted: none; no {free} from {result.low} to {result.high} runs"]
    if result.open_ended:
        lines.append(f"accepted: any {free} >= {result.minimum} (every size up to {result.high} runs)")
    else:
        listed = ", ".join(map(str, result.accepted)) if len(result.accepted) <= 12 else ranges(result.accepted)
        lines.append(f"accepted: {free} in {{{listed}}}")
    lines.append(f"minimum input: {result.template_at(result.minimum)}")  # type: ignore[arg-type]
    lossless = [s for s in result.accepted if s not in result.lossy]
    lines.append(f"no pixels lost: {{{ranges(lossless)}}}" if lossless else "no pixels lost: none")
    if result.lossy:
        lines.append("lose pixels to floor division:")
        for size, drops in sorted(result.lossy.items()):
            lines.append(f"  {size}: " + "; ".join(
                f"{d.layer} {'x'.join(map(str, d.size))} -> {'x'.join(map(str, d.out))} drops "
                f"{_pixels(d.pixels)}" for d in drops))
    return lines


def _free(template: str) -> str:
    letters = [p for p in template.split("x") if p.isalpha()]
    return ", ".join(letters) if len(letters) > 1 else letters[0]


def _pixels(pixels: tuple[int, ...]) -> str:
    if len(pixels) == 2:
        rows, cols = pixels
        return f"{rows} row{'s' * (rows != 1)} and {cols} column{'s' * (cols != 1)}"
    return " x ".join(map(str, pixels)) + " pixels"
