"""The size algebra against brute force, and its cost against one analysis; asserts nothing.

    python benchmarks/sizes_algebra.py            # everything; writes docs/sizes.md
    python benchmarks/sizes_algebra.py --speed    # only the speed ratios

Correctness: ``Solver.solve`` (the algebra of one trace, checked at its edges) against
``Solver.sweep`` (a meta forward at every size) on every fixture and example model, the
reference zoo, a U-Net and the torchvision classification models: accepted sizes and lost
pixels must be equal. Speed: ``shapecheck sizes`` over 1..1024 (its trace, the algebra and
the checking forwards) as a ratio to one ``analyze`` of the same model, in one process.
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

import shapecheck
from shapecheck import memo
from shapecheck.sizes import Solver, parse_template
from shapecheck.spec import parse_input

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_RANGE = (1, 128)
TORCHVISION_RANGE = (1, 48)  # a meta forward per size of 80 models: what the sweep can afford


def _load(path: Path) -> object:
    spec = importlib.util.spec_from_file_location(f"sizes_bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _fixtures() -> Iterator[tuple[str, Callable[[], nn.Module], str]]:
    """Every nn.Module class of the fixture and example files, at its header's input."""
    files = sorted((ROOT / "tests/fixtures").rglob("*.py")) + sorted((ROOT / "examples").glob("*.py"))
    # tests/fixtures/careless exit, loop or print at import on purpose (the CLI's safety tests): not shapes.
    for path in (p for p in files if "careless" not in p.parts):
        header = path.read_text().splitlines()[:1]
        shape = header[0].partition("input=")[2].split()[0] if header and "input=" in header[0] else "3x64x64"
        try:
            module = _load(path)
        except Exception:  # noqa: BLE001 - a fixture that does not import is not a model
            continue
        for name, cls in vars(module).items():
            if isinstance(cls, type) and issubclass(cls, nn.Module) and cls.__module__ == module.__name__:
                yield f"{path.relative_to(ROOT)}:{name}", cls, shape


def _zoo() -> Iterator[tuple[str, Callable[[], nn.Module], str]]:
    from shapecheck.zoo import models

    for name in ("SimpleCNN", "TutorialNet", "QuizCNN", "CatDogCNN", "ResNetCIFAR"):
        yield f"zoo:{name}", getattr(models, name), "3x32x32" if name != "QuizCNN" else "3x64x64"


def _torchvision() -> Iterator[tuple[str, Callable[[], nn.Module], str]]:
    import torchvision

    for name in torchvision.models.list_models(module=torchvision.models):
        kwargs = {"init_weights": False} if name in ("googlenet", "inception_v3") else {}
        yield f"torchvision:{name}", (lambda n=name, k=kwargs: torchvision.models.get_model(n, weights=None, **k)), "3x224x224"


def compare(name: str, build: Callable[[], nn.Module], shape: str, low: int, high: int,
            budget_s: float = 90.0) -> dict[str, object]:
    """The sweep first, size by size, until ``budget_s`` is spent (a recurrent fixture runs
    one Python step per pixel of its map); then ``solve`` over the range the sweep covered."""
    try:
        model = build().eval()
        template, _ = parse_template("x".join([shape.split("x")[0], *("H" for _ in shape.split("x")[1:])]))
        spec = parse_input(shape)
        truth = Solver(model, [spec], template)
        start = time.perf_counter()
        top = low
        while top <= high and time.perf_counter() - start < budget_s:
            truth.probe(top)
            top += 1
        swept = truth.sweep(low, top - 1)  # every size already probed
        sweep_s = time.perf_counter() - start
        solver = Solver(model, [spec], template)
        start = time.perf_counter()
        answer = solver.solve(low, top - 1)
        solve_s = time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - reported in the table
        return {"model": name, "error": f"{type(exc).__name__}: {str(exc)[:80]}"}
    return {"model": name, "method": answer.method, "why": answer.why_sweep or "",
            "accepted_equal": answer.accepted == swept.accepted, "lossy_equal": answer.lossy == swept.lossy,
            "minimum": answer.minimum, "count": len(answer.accepted), "checks": len(answer.verified),
            "solve_s": solve_s, "sweep_s": sweep_s, "range": f"{low}..{top - 1}"}


def speed(repeats: int = 7) -> list[dict[str, object]]:
    """``sizes`` over 1..1024 against one analysis, side by side, median of ``repeats``."""
    import torchvision

    unet = _load(ROOT / "tests/fixtures/unet_helper.py").UNet  # type: ignore[attr-defined]
    quiz = _load(ROOT / "examples/quiz_c.py").Net  # type: ignore[attr-defined]
    rows = []
    for name, model, shape in (("resnet50", torchvision.models.resnet50(), "3x224x224"),
                               ("U-Net (tests/fixtures/unet_helper.py)", unet(), "3x64x64"),
                               ("quiz (examples/quiz_c.py)", quiz(), "3x64x64")):
        model.eval()
        template = (int(shape.split("x")[0]), None, None)
        shapecheck.analyze(model, shape)  # warm: imports, the source files' first reading
        analyze_s, sizes_s = [], []
        for _ in range(repeats):
            # Each call as a process's first: the kernel memo that a second analysis of the
            # same model replays from is emptied before each.
            memo.shared().results.clear()
            start = time.perf_counter()
            shapecheck.analyze(model, shape)
            analyze_s.append(time.perf_counter() - start)
            memo.shared().results.clear()
            start = time.perf_counter()
            answer = Solver(model, [parse_input(shape)], template).solve(1, 1024)
            sizes_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        Solver(model, [parse_input(shape)], template).sweep(16, 512)
        old_s = time.perf_counter() - start
        a, s = statistics.median(analyze_s), statistics.median(sizes_s)
        rows.append({"model": name, "analyze_s": a, "sizes_s": s, "ratio": s / a, "method": answer.method,
                     "checks": len(answer.verified), "old_sweep_s": old_s, "old_ratio": old_s / a})
    return rows


def _speed_table(rows: list[dict[str, object]]) -> list[str]:
    out = ["| model | one analyze s | `sizes` 1..1024 s | ratio | target | how | forwards checking it | "
           "old sweep 16..512 s | its ratio |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        met = "met" if float(r["ratio"]) <= 3 else "NOT met"  # type: ignore[arg-type]
        out.append(f"| {r['model']} | {r['analyze_s']:.3f} | {r['sizes_s']:.3f} | {r['ratio']:.2f}x | 3x: {met} | "
                   f"{r['method']} | {r['checks']} | {r['old_sweep_s']:.2f} | {r['old_ratio']:.0f}x |")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--speed", action="store_true", help="only the speed ratios")
    parser.add_argument("--no-torchvision", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    speed_rows = speed()
    print("\n".join(_speed_table(speed_rows)), flush=True)
    if args.speed:  # a quiet hour's ratios, into the page the last full run wrote
        _rewrite_speed(speed_rows)
        return 0
    results = []
    for name, build, shape in [*_fixtures(), *_zoo()]:
        results.append(compare(name, build, shape, *FIXTURE_RANGE))
        print(results[-1], flush=True)
    if not args.no_torchvision:
        for name, build, shape in _torchvision():
            results.append(compare(name, build, shape, *TORCHVISION_RANGE))
            print(results[-1], flush=True)
    _write(results, speed_rows)
    return 0


def _rewrite_speed(speed_rows: list[dict[str, object]]) -> None:
    page = ROOT / "docs/sizes.md"
    if not page.exists():
        return
    lines = page.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| model | one analyze s"))
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    if start >= 2 and lines[start - 2].startswith("Ratios measured again"):
        start -= 2  # the note of an earlier --speed run
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    note = f"Ratios measured again with `--speed` at commit {commit}, on a quieter host:"
    lines[start:end] = [note, "", *_speed_table(speed_rows)]
    page.write_text("\n".join(lines) + "\n")


def _write(results: list[dict[str, object]], speed_rows: list[dict[str, object]]) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    ok = [r for r in results if "error" not in r]
    algebra = [r for r in ok if r["method"] == "algebra"]
    wrong = [r for r in ok if not (r["accepted_equal"] and r["lossy_equal"])]
    lines = [
        "# The size algebra against brute force",
        "",
        f"Measured with `python benchmarks/sizes_algebra.py` at commit {commit}, torch {torch.__version__}, "
        "one intra-op thread, on the 2-core development VM.",
        "",
        "`shapecheck sizes` answers from the size algebra of one trace (`shapecheck/algebra.py`), checked by "
        "meta forwards at the accepted set's edges and a sample inside and outside it; where an op is not "
        "modelled, or a forward disagrees, it falls back to the sweep and says why. Here each model's answer "
        "is compared with the sweep itself (a meta forward at every size of the range): accepted sizes and "
        "the pixels lost at each size.",
        "",
        f"- models: {len(results)} ({len(results) - len(ok)} could not be built or traced at all)",
        f"- answered by the algebra: {len(algebra)}; by the sweep, after the algebra declined: {len(ok) - len(algebra)}",
        f"- answers that differ from the sweep: {len(wrong)}",
        "",
        "## Speed: `sizes` against one analysis",
        "",
        *_speed_table(speed_rows),
        "",
        "## Every model",
        "",
        "| model | range | how | accepted equal | lost pixels equal | minimum | accepted sizes | forwards checking it | "
        "solve s | sweep s | why the sweep |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | | error | | | | | | | | {r['error']} |")
            continue
        lines.append(f"| {r['model']} | {r['range']} | {r['method']} | {'yes' if r['accepted_equal'] else 'NO'} | "
                     f"{'yes' if r['lossy_equal'] else 'NO'} | {r['minimum']} | {r['count']} | {r['checks']} | "
                     f"{r['solve_s']:.2f} | {r['sweep_s']:.2f} | {str(r['why']).replace('|', '/')} |")
    (ROOT / "docs/sizes.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
