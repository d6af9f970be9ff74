"""shapecheck against torchinfo 1.8, side by side in one run; prints ratios, asserts nothing.

    python benchmarks/bench.py warm      # API against API on pre-built models
    python benchmarks/bench.py cold      # whole processes: CLI start-up, the torchvision zoo
"""
from __future__ import annotations

import gc
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def _status_mb(key: str) -> float:
    """A memory line of /proc/self/status (VmRSS now, VmHWM peak since the last reset), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_hwm() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def timed(fn):  # type: ignore[no-untyped-def]
    gc.collect()
    reset_hwm()
    before = _status_mb("VmRSS")
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start, _status_mb("VmHWM") - before


def warm() -> None:
    import torchinfo
    import torchvision.models as tv

    import shapecheck

    small = tv.resnet18()
    shapecheck.analyze(small, "3x64x64")
    torchinfo.summary(small, (1, 3, 64, 64), verbose=0)
    cases = [("vit_h_14", tv.vit_h_14, 1, 224), ("resnet50", tv.resnet50, 16, 1024)]
    print("| model | input | torchinfo s | shapecheck s | speed-up | torchinfo peak MB | shapecheck peak MB |")
    print("|---|---|---|---|---|---|---|")
    for name, factory, batch, size in cases:
        model = factory().eval()
        sc_t, sc_mem = timed(lambda m=model, s=size, b=batch: shapecheck.analyze(m, f"3x{s}x{s}", batch=b))
        ti_t, ti_mem = timed(lambda m=model, s=size, b=batch: torchinfo.summary(m, (b, 3, s, s), verbose=0, device="cpu"))
        print(f"| {name} | {batch}x3x{size}x{size} | {ti_t:.2f} | {sc_t:.3f} | {ti_t / sc_t:.1f}x "
              f"| {ti_mem:.0f} | {sc_mem:.0f} |", flush=True)
        del model


ZOO = """
import time, sys, torch, torchvision.models as tv
sys.path.insert(0, {root!r})
import shapecheck
from shapecheck.target import construct
from shapecheck.verify import real_module_shapes, traced_module_shapes, unique_params
names = tv.list_models(module=tv)
start = time.perf_counter()
reports = {{}}
for name in names:
    size = 299 if name == 'inception_v3' else 224
    model, _ = construct(tv.get_model, name)
    reports[name] = (shapecheck.analyze(model, f'3x{{size}}x{{size}}', batch=1), size)
elapsed = time.perf_counter() - start
print(f'{{len(names)}} models built on meta and analyzed in {{elapsed:.1f}} s', flush=True)
if {check}:
    bad = []
    for name, (report, size) in reports.items():
        model = tv.get_model(name).eval()
        real = real_module_shapes(model, torch.randn(1, 3, size, size))
        if traced_module_shapes(report) != real or report.totals.params != unique_params(model):
            bad.append(name)
    print('checked against real CPU forwards; mismatches:', bad or 'none')
"""


def cold(check: bool) -> None:
    def run(*argv: str) -> float:
        start = time.perf_counter()
        subprocess.run(argv, check=False, capture_output=True, cwd=ROOT)
        return time.perf_counter() - start

    python = sys.executable
    shapecheck_cli = str(Path(python).with_name("shapecheck"))
    imports, clis = [], []
    for _ in range(5):
        imports.append(run(python, "-c", "import torch"))
        clis.append(run(shapecheck_cli, "examples/quiz_a.py:Net", "--input", "3x64x64"))
    base, cli = min(imports), min(clis)
    print(f"import torch {base:.2f} s, shapecheck CLI on quiz_a {cli:.2f} s: {cli / base:.2f}x (best of 5)")
    subprocess.run([python, "-c", ZOO.format(root=str(ROOT), check=check)], cwd=ROOT)


if __name__ == "__main__":
    torch.set_num_threads(1)
    what = sys.argv[1] if len(sys.argv) > 1 else "warm"
    warm() if what == "warm" else cold(check="--check" in sys.argv)
