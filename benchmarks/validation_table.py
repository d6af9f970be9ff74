"""Write docs/validation.md's results table from the results JSONs in docs/results/.

Rows come only from measured runs; a model with no result is listed as pending.
"""
from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from shapecheck.zoo import ZOO

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


def table() -> str:
    # Runs of different lengths or devices are different rows, never averaged together.
    runs: dict[tuple[str, str, int], list[dict]] = defaultdict(list)
    for path in sorted(RESULTS.rglob("*.json")):
        result = json.loads(path.read_text())
        runs[(result["model"], result["device"], result["epochs"])].append(result)
    lines = ["| model | params | MACs / sample | input | epochs | seeds | test accuracy (mean ± sd) | "
             "floor | wall time / run | device | torch | shape cross-check |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, spec in ZOO.items():
        found = [(device, rs) for (model, device, _), rs in runs.items() if model == name]
        if not found:
            lines.append(f"| {name} | | | {spec.input} | | | pending: not yet run | "
                         f"{_floor(spec.target_accuracy)} | | | | |")
        for device, rs in found:
            accs = [r["test_accuracy"] for r in rs]
            sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
            r0 = rs[0]
            passed = all(r["cross_check"].startswith("passed") for r in rs)
            lines.append(
                f"| {name} | {r0['params']:,} | {r0['macs_per_sample']:,} | {r0['input']} | {r0['epochs']} | "
                f"{len(rs)} | {statistics.mean(accs):.2%} ± {sd:.2%} | {_floor(spec.target_accuracy)} | "
                f"{statistics.mean(r['wall_time_s'] for r in rs):.0f} s | {device} ({r0['hardware']}) | "
                f"{r0['torch_version']} | {'passed' if passed else 'FAILED'} |")
    return "\n".join(lines) + "\n"


def _floor(value: float | None) -> str:
    return f"{value:.1%}" if value else "not set (not measured)"


if __name__ == "__main__":
    sys.stdout.write(table())
