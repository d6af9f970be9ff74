"""What putting the model back costs: ``analyze`` with its snapshots (shapecheck.preserve)
against ``analyze`` with them switched off, side by side in one process, alternating, the
median of several pairs. Prints a Markdown table for docs/performance.md.

    .venv/bin/python benchmarks/preserve_cost.py [--repeats 9]

The models: torchvision's resnet50 and vit_b_16 built on meta (what the CLI analyzes),
resnet50 with real CPU weights (what a notebook user passes), the quiz net, and the 80
torchvision classification models analyzed in turn on meta (one sum per side).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import shapecheck  # noqa: E402
from shapecheck import preserve  # noqa: E402


class _Off:
    """A snapshot that takes and restores nothing: the analysis as it was before preserve."""

    def __init__(self, modules: Any) -> None:
        pass

    def restore(self) -> None:
        pass


@contextmanager
def snapshots(on: bool):  # type: ignore[no-untyped-def]
    kept = preserve.Snapshot
    preserve.Snapshot = kept if on else _Off  # type: ignore[misc, assignment]
    try:
        yield
    finally:
        preserve.Snapshot = kept  # type: ignore[misc]


def cases() -> dict[str, Callable[[], float]]:
    import torchvision.models as tv

    from examples.quiz_c import Net

    def one(model: torch.nn.Module, spec: str) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            shapecheck.analyze(model, spec, batch=1)
            return time.perf_counter() - start
        return run

    from shapecheck.target import build, parse_target

    def on_meta(name: str) -> torch.nn.Module:  # as the CLI builds them
        return build(parse_target(f"torchvision.models:{name}")).model

    resnet50, vit = on_meta("resnet50"), on_meta("vit_b_16")
    classification = [(on_meta(name), "3x224x224") for name in tv.list_models(module=tv)]
    torch.manual_seed(0)
    real = tv.resnet50()

    def sweep() -> float:
        start = time.perf_counter()
        for model, spec in classification:
            shapecheck.analyze(model, spec, batch=1)
        return time.perf_counter() - start

    return {"resnet50 (meta)": one(resnet50, "3x224x224"), "vit_b_16 (meta)": one(vit, "3x224x224"),
            "resnet50 (real CPU weights)": one(real, "3x224x224"), "quiz net": one(Net(), "3x64x64"),
            f"{len(classification)} torchvision classification models": sweep}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| model | without snapshots s | with snapshots s | ratio (median of pairs) |")
    print("|---|---|---|---|")
    for name, run in cases().items():
        run()  # warm: the source readers, the kernel memo
        pairs = []
        for _ in range(args.repeats):
            with snapshots(False):
                off = run()
            with snapshots(True):
                on = run()
            pairs.append((off, on))
        off = statistics.median(p[0] for p in pairs)
        on = statistics.median(p[1] for p in pairs)
        ratio = statistics.median(p[1] / p[0] for p in pairs)
        print(f"| {name} | {off:.4f} | {on:.4f} | {ratio:.3f} |", flush=True)


if __name__ == "__main__":
    main()
