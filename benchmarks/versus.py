"""Time the 80 torchvision classification models and resnet50 (built on meta, analyzed warm)
with whichever shapecheck is first on PYTHONPATH; run it alternately with a worktree of
another commit to compare two versions on the same host:

    git worktree add /tmp/old COMMIT
    cd /tmp && for i in 1 2 3 4; do
      PYTHONPATH=/tmp/old  python /path/to/benchmarks/versus.py
      PYTHONPATH=/path/to/checkout python /path/to/benchmarks/versus.py
    done

Prints the medians of 5: seconds for the 80-model sweep, and for one resnet50 analysis.
"""
from __future__ import annotations

import statistics
import sys
import time
import warnings

warnings.filterwarnings("ignore")

import torch  # noqa: E402
import torchvision.models as tv  # noqa: E402

import shapecheck  # noqa: E402
from shapecheck.target import build, parse_target  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    print(f"shapecheck from {shapecheck.__file__}", file=sys.stderr)
    models = [build(parse_target(f"torchvision.models:{n}")).model for n in tv.list_models(module=tv)]
    resnet = build(parse_target("torchvision.models:resnet50")).model
    for model in models:  # warm: source readers, kernel memo
        shapecheck.analyze(model, "3x224x224", batch=1)
    sweeps, single = [], []
    for _ in range(5):
        start = time.perf_counter()
        for model in models:
            shapecheck.analyze(model, "3x224x224", batch=1)
        sweeps.append(time.perf_counter() - start)
        for _ in range(5):
            start = time.perf_counter()
            shapecheck.analyze(resnet, "3x224x224", batch=1)
            single.append(time.perf_counter() - start)
    print(f"sweep {statistics.median(sweeps):.4f} s, resnet50 {statistics.median(single):.5f} s")


if __name__ == "__main__":
    main()
