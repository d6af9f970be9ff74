"""Every torchvision model family against a real forward pass. Writes docs/zoo.md.

    .venv/bin/python benchmarks/zoo.py                          # every model (resumes)
    .venv/bin/python benchmarks/zoo.py --only video             # one family
    .venv/bin/python benchmarks/zoo.py --only detection --limit 2
    .venv/bin/python benchmarks/zoo.py --report-only            # docs/zoo.md from the results so far

Families: classification (``list_models(module=torchvision.models)``), segmentation,
detection (Faster/Mask/Keypoint R-CNN, RetinaNet, SSD, SSDlite, FCOS), video and optical
flow (RAFT, two image inputs). Quantized models are left out (not measured).

Per model, built with ``weights=None`` (and ``weights_backbone=None``) after
``torch.manual_seed(0)``, in eval mode, batch 1:

- ground truth: ``real_module_shapes`` on a real CPU forward under ``torch.no_grad()``, fed the
  same seeded input shapecheck makes for a CPU run (``torch.randn`` from a generator seeded 0);
  models in META_TRUTH get a bare meta forward instead (built under ``torch.device('meta')``);
- shapes equal: ``traced_module_shapes(report)`` equals it, every module call in order, and
  ``report.outputs`` equals the real output's tensors. Detection's later stages depend on the
  image (how many proposals and boxes survive NMS), so for detection only the module rows whose
  shapes are the same for two different real inputs (seed 0 and seed 1) are compared; the
  column "all rows" says whether the data-dependent ones matched too;
- params equal: ``report.totals.params == unique_params(model)``;
- findings: error and warning codes; a crash is an exception out of ``analyze``;
- seconds: ``analyze``, the bare meta build + meta forward (where the model runs on meta), and
  the CPU build and forward.

Each model runs in one worker subprocess (restarted after a crash, a --timeout or the memory
cap); results go to a JSON lines file (default /tmp/zoo_results.jsonl) as they finish.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # isolated.py, also under python -m

from isolated import (ROOT, Pool1, analyze_into, cell, first_line, flat_shapes, load, measured_at,  # noqa: E402
                      prepare_worker, run_all, serve, tail)

DEFAULT_RESULTS = Path("/tmp/zoo_results.jsonl")
FAMILIES = ("classification", "segmentation", "detection", "video", "optical_flow")
META_TRUTH: set[str] = set()  # models whose real CPU forward is too slow or too big here: none so far


@dataclass
class Case:
    family: str
    model: str
    inputs: list[str]  # one spec per forward argument, without the batch
    kwargs: dict = field(default_factory=dict)


def _crop(name: str, default: int) -> int:
    """The model's natural input size: its DEFAULT weights' crop size (never downloaded)."""
    import torchvision.models as tv

    try:
        transforms = tv.get_model_weights(name).DEFAULT.transforms
        crop = transforms.keywords.get("crop_size", default)
        return crop[0] if isinstance(crop, list | tuple) else int(crop)
    except Exception:  # noqa: BLE001
        return default


def cases() -> list[Case]:
    import torchvision.models as tv

    found: list[Case] = []
    for name in tv.list_models(module=tv):
        # vit_* built with weights=None is fixed at image_size=224, whatever its weights' crop
        size = 224 if name.startswith("vit_") else _crop(name, 224)
        kwargs = {"init_weights": False} if name in ("googlenet", "inception_v3") else {}
        found.append(Case("classification", name, [f"3x{size}x{size}"], kwargs))
    for name in tv.list_models(module=tv.segmentation):
        found.append(Case("segmentation", name, ["3x520x520"], {"weights_backbone": None}))
    for name in tv.list_models(module=tv.detection):
        size = 300 if name.startswith("ssd300") else 320
        found.append(Case("detection", name, [f"3x{size}x{size}"], {"weights_backbone": None}))
    for name in tv.list_models(module=tv.video):
        size = 112 if name in ("r3d_18", "mc3_18", "r2plus1d_18") else 224
        found.append(Case("video", name, [f"3x16x{size}x{size}"]))
    for name in tv.list_models(module=tv.optical_flow):
        found.append(Case("optical_flow", name, ["3x368x496", "3x368x496"]))
    return found


# ---------------------------------------------------------------- worker (child process)

def _build(case: Case):  # type: ignore[no-untyped-def]
    import torch
    import torchvision.models as tv

    torch.manual_seed(0)
    return tv.get_model(case.model, weights=None, **case.kwargs).eval()


def _input(spec: str, seed: int, device: str = "cpu"):  # type: ignore[no-untyped-def]
    import torch

    shape = (1, *map(int, spec.split("x")))
    if device == "meta":
        return torch.empty(shape, device="meta")
    # What shapecheck's CPU run feeds (modelstate.make_input), for seed 0.
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _diff(traced: dict, real: dict, keys: list[str]) -> str:
    for key in keys:
        if traced.get(key) != real.get(key):
            return f"{key or '(root)'}: traced {traced.get(key)} vs real {real.get(key)}"
    return ""


def measure(case: Case) -> dict:
    import torch

    from shapecheck.verify import real_module_shapes, traced_module_shapes, unique_params

    row: dict = {**asdict(case), "truth": "meta forward" if case.model in META_TRUTH else "real CPU forward"}
    # The bare cost on meta: build under torch.device('meta') and one forward.
    try:
        start = time.perf_counter()
        with torch.device("meta"):
            meta_model = _build(case)
        row["meta_build_s"] = time.perf_counter() - start
        start = time.perf_counter()
        with torch.no_grad():
            meta_out = meta_model(*[_input(s, 0, "meta") for s in case.inputs])
        row["meta_forward_s"] = time.perf_counter() - start
        row["meta_outputs"] = [list(s) for s in flat_shapes(meta_out)]
        del meta_out
    except Exception as exc:  # noqa: BLE001 - detection reads values: no bare meta forward
        row["meta_forward_error"] = first_line(exc)[:200]
        meta_model = None
    if case.model in META_TRUTH:
        model = meta_model if meta_model is not None else None
        if model is None:
            row["status"] = "no ground truth"
            return row
        row["build_s"] = row["meta_build_s"]
    else:
        del meta_model
        start = time.perf_counter()
        model = _build(case)
        row["build_s"] = time.perf_counter() - start
    device = "meta" if case.model in META_TRUTH else "cpu"
    xs = [_input(s, 0, device) for s in case.inputs]

    report = analyze_into(row, model, case.inputs if len(case.inputs) > 1 else case.inputs[0], 4000)
    if report is None:
        return row

    start = time.perf_counter()
    with torch.no_grad():
        model(*xs)
    row["forward_s"] = time.perf_counter() - start
    real = real_module_shapes(model, *xs)
    traced = traced_module_shapes(report)
    keys = list(real)
    if case.family == "detection":
        other = real_module_shapes(model, *[_input(s, 1, device) for s in case.inputs])
        keys = [k for k in real if other.get(k) == real[k]]
        row["data_dependent_rows"] = len(real) - len(keys)
        row["all_rows_equal"] = traced == real
    row["compared_rows"] = len(keys)
    row["real_outputs"] = [list(s) for s in real[""][0]] if real.get("") else []
    mismatch = _diff(traced, real, keys)
    if not mismatch and case.family != "detection" and set(traced) != set(real):
        mismatch = f"module names differ: only traced {sorted(set(traced) - set(real))[:5]}, " \
                   f"only real {sorted(set(real) - set(traced))[:5]}"
    if not mismatch and "" in keys and row["outputs"] != row["real_outputs"]:
        mismatch = f"outputs: report {row['outputs']} vs real {row['real_outputs']}"
    row["shapes_equal"] = not mismatch
    row["shape_mismatch"] = mismatch[:600]
    row["params"] = report.totals.params
    row["real_params"] = unique_params(model)
    row["params_equal"] = row["params"] == row["real_params"]
    errors = [f for f in report.findings if f.severity == "error"]
    problems = []
    if errors:
        problems.append("error finding: " + "; ".join(f"{f.code} {f.layer or ''}: {f.message}" for f in errors))
    if any(f.code == "SHP102" for f in report.findings):
        problems.append("SHP102")
    if mismatch:
        problems.append("shapes differ: " + mismatch)
    if not row["params_equal"]:
        problems.append(f"params {row['params']} vs real {row['real_params']}")
    row["status"] = "pass" if not problems else "fail"
    row["reason"] = " | ".join(problems)[:800]
    return row


def answer(item: dict) -> dict:
    """The worker's row for one case: measured, or "harness error" if measuring itself failed."""
    case = Case(**item)
    try:
        return measure(case)
    except BaseException as exc:  # noqa: BLE001 - the worker must answer
        return {**asdict(case), "status": "harness error", "reason": f"{type(exc).__name__}: {exc}"[:300],
                "traceback": tail(exc, 4000)}


def worker(conn: Connection) -> None:
    prepare_worker("torchvision")
    serve(conn, answer)


# ---------------------------------------------------------------- parent

def _findings_cell(row: dict) -> str:
    found = row.get("findings", [])
    if not found:
        return "none"
    errors = Counter(f["code"] for f in found if f["severity"] == "error")
    others = Counter(f["code"] for f in found if f["severity"] != "error")
    parts = [f"E {c}" + (f"×{n}" if n > 1 else "") for c, n in sorted(errors.items())]
    parts += [f"W {c}" + (f"×{n}" if n > 1 else "") for c, n in sorted(others.items())]
    return ", ".join(parts)


def _yes(value: object) -> str:
    return "—" if value is None else ("yes" if value else "**no**")


def _s(row: dict, key: str) -> str:
    return f"{row[key]:.2f}" if key in row else "—"


def write_doc(rows: list[dict], doc: Path, note: str | None) -> None:
    import torch
    import torchvision

    status = Counter(r["status"] for r in rows)
    crashes = [r for r in rows if r["status"] == "crash"]
    errors = [r for r in rows if any(f["severity"] == "error" for f in r.get("findings", ()))]
    shp102 = [r for r in rows if any(f["code"] == "SHP102" for f in r.get("findings", ()))]
    shape_bad = [r for r in rows if r.get("shapes_equal") is False]
    param_bad = [r for r in rows if r.get("params_equal") is False]
    warned = Counter(f["code"] for r in rows for f in r.get("findings", ()) if f["severity"] != "error")
    analyzed = [r for r in rows if "analyze_s" in r and r["status"] != "crash"]
    on_meta = [r for r in analyzed if "meta_forward_s" in r]
    analyze = sum(r["analyze_s"] for r in analyzed)
    meta_analyze = sum(r["analyze_s"] for r in on_meta)
    meta_bare = sum(r["meta_build_s"] + r["meta_forward_s"] for r in on_meta)
    cpu_bare = sum(r["build_s"] + r["forward_s"] for r in analyzed if "forward_s" in r)
    per_family = ", ".join(f"{fam} {sum(r['family'] == fam for r in rows)}" for fam in FAMILIES)
    lines = [
        "# torchvision zoo",
        "",
        "Every torchvision model family, analyzed with `shapecheck.analyze(model, input, batch=1)` and "
        "compared with a real forward pass. Written by `benchmarks/zoo.py`; rerun with "
        "`.venv/bin/python benchmarks/zoo.py` (`--only FAMILY`, `--limit N` for quick runs).",
        "",
        f"Measured at {measured_at()} with torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"Python {sys.version.split()[0]}, one CPU thread (`torch.set_num_threads(1)`) on a shared 2-core "
        "machine (timings are noisy).",
        "",
    ]
    if note:
        lines += [f"**{note}**", ""]
    lines += [
        "## Summary",
        "",
        f"- Models: **{len(rows)}** ({per_family})",
        f"- Pass (no crash, no error finding, no SHP102, shapes and params equal the ground truth): "
        f"**{status['pass']}**",
        f"- Crashes in `analyze`: **{len(crashes)}**",
        f"- Models with an error finding: **{len(errors)}**; with SHP102: **{len(shp102)}**",
        f"- Shapes differ from the ground truth: **{len(shape_bad)}**; params differ: **{len(param_bad)}**",
        f"- Stopped by the harness (timeout / memory cap / worker died): "
        f"**{sum(status[s] for s in ('timeout', 'memory', 'worker died', 'harness error'))}**",
        "- Warning findings: " + (", ".join(f"{c} ×{n}" for c, n in sorted(warned.items())) or "none"),
        f"- `analyze` ran on meta for {sum(r.get('device') == 'meta' for r in rows)} models and fell back to CPU "
        f"(the forward reads tensor values) for {sum(r.get('device') == 'cpu' for r in rows)}: "
        + (", ".join(r["model"] for r in rows if r.get("device") == "cpu") or "none"),
        f"- Time: `analyze` {analyze:.0f} s in all; over the {len(on_meta)} models that also run bare on meta, "
        f"`analyze` {meta_analyze:.0f} s vs bare meta build + forward {meta_bare:.0f} s "
        f"(ratio {meta_analyze / meta_bare:.2f})" + (f"; real CPU build + forward of all: {cpu_bare:.0f} s" if cpu_bare else "")
        if on_meta and meta_bare else f"- Time: `analyze` {analyze:.0f} s in all",
        "",
        "Quantized models (`torchvision.models.quantization`, 12) are left out of this benchmark's scope "
        "and were not measured; their float architectures (googlenet, inception_v3, mobilenet_v2/v3, "
        "resnet18/50, resnext101, shufflenet_v2) are measured above.",
        "",
        "How each row is measured: the model is built with `weights=None` (and `weights_backbone=None`; "
        "`init_weights=False` for googlenet and inception_v3) after `torch.manual_seed(0)`, in eval mode, "
        "batch 1, at its natural input size (its default weights' crop size; ViTs at 224, since "
        "`weights=None` builds them for 224; segmentation 520; detection 320, SSD300 300, which their "
        "transforms resize; video CxTxHxW with 16 frames; RAFT two 368x496 images). Ground truth is "
        "`shapecheck.verify.real_module_shapes` on a real CPU forward under `torch.no_grad()` (the "
        "column says where a bare meta forward was used instead). *Shapes* compares every module call's "
        "output shapes (`traced_module_shapes(report)`) and `report.outputs` with it. Detection's later "
        "stages depend on the image (how many proposals and boxes survive NMS): for detection only the "
        "rows whose shapes are the same for two different real inputs are compared, and *all rows* "
        "says whether the data-dependent rows matched too on the same input (shapecheck's CPU fallback "
        "feeds the same seeded `torch.randn` input). *Params* is `report.totals.params == "
        "unique_params(model)`. Seconds: `analyze` (after the CPU build, on that model); bare meta "
        "build + meta forward; real CPU build and forward. One worker process runs the models one "
        "after another, so `analyze` profits from shapecheck's in-process memo of meta kernels "
        "warmed by the models before it, as it would in one pytest session.",
        "",
    ]
    no_meta: dict[str, list[str]] = {}
    for r in rows:
        if "meta_forward_error" in r:
            where = "build" if "meta_build_s" not in r else "forward"
            no_meta.setdefault(f"{where}: {r['meta_forward_error'][:90]}", []).append(r["model"])
    if no_meta:
        lines += [f"No bare meta run (so — in *meta build+fwd*) for {sum(map(len, no_meta.values()))} models; "
                  "`analyze` handles them all:", ""]
        lines += [f"- meta {why} — {', '.join(models)}" for why, models in no_meta.items()]
        lines.append("")
    lines += [
        "## Models",
        "",
        "| family | model | input | ground truth | shapes equal | rows compared | params equal | findings "
        "| analyze s | meta build+fwd s | CPU build s | CPU fwd s | result |",
        "|---|---|---|---|---|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        rows_cell = str(r.get("compared_rows", "—"))
        if r["family"] == "detection" and "compared_rows" in r:
            rows_cell += f" (+{r['data_dependent_rows']} data-dep.; all rows {_yes(r['all_rows_equal'])})"
        meta = f"{r['meta_build_s'] + r['meta_forward_s']:.2f}" if "meta_forward_s" in r else "—"
        result = "pass" if r["status"] == "pass" else f"**{r['status']}**"
        lines.append(
            f"| {r['family']} | {r['model']} | {', '.join(r['inputs'])} | {r.get('truth', '')} "
            f"| {_yes(r.get('shapes_equal'))} | {rows_cell} | {_yes(r.get('params_equal'))} | {_findings_cell(r)} "
            f"| {_s(r, 'analyze_s')} | {meta} | {_s(r, 'build_s')} | {_s(r, 'forward_s')} | {result} |")
    lines += ["", "## Per family", "",
              "| family | models | pass | analyze s | meta build+fwd s (models that run on meta) | CPU build+fwd s |",
              "|---|---:|---:|---:|---:|---:|"]
    for fam in FAMILIES:
        rs = [r for r in rows if r["family"] == fam]
        if not rs:
            continue
        meta = [r for r in rs if "meta_forward_s" in r]
        lines.append(
            f"| {fam} | {len(rs)} | {sum(r['status'] == 'pass' for r in rs)} "
            f"| {sum(r.get('analyze_s', 0) for r in rs):.1f} "
            f"| {sum(r['meta_build_s'] + r['meta_forward_s'] for r in meta):.1f} ({len(meta)}) "
            f"| {sum(r.get('build_s', 0) + r.get('forward_s', 0) for r in rs):.1f} |")
    lines += ["", "## Warning findings", "",
              "Not failures: the design rules' remarks on torchvision's own code (one row per finding; "
              "a folded finding covers every layer made at the same line).", ""]
    warned_rows = [(r["model"], f) for r in rows for f in r.get("findings", ()) if f["severity"] != "error"]
    if warned_rows:
        lines += ["| model | code | layer | message |", "|---|---|---|---|"]
        lines += [f"| {m} | {f['code']} | {f['layer'] or ''} | {cell(f['message'])[:240]} |" for m, f in warned_rows]
    else:
        lines.append("None.")
    failed = [r for r in rows if r["status"] != "pass"]
    lines += ["", "## Failures", ""]
    if failed:
        lines += ["| model | result | reason |", "|---|---|---|"]
        lines += [f"| {r['model']} | {r['status']} | {cell(r.get('reason', ''))} |" for r in failed]
    else:
        lines.append("None.")
    doc.write_text("\n".join(lines) + "\n")
    print(f"wrote {doc}: {len(rows)} models, {status['pass']} pass", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=FAMILIES, action="append", help="one family (repeatable)")
    parser.add_argument("--limit", type=int, default=None, help="at most N models (per the selection)")
    parser.add_argument("--model", action="append", help="only these model names (repeatable)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="JSON lines file (resumed)")
    parser.add_argument("--fresh", action="store_true", help="measure again the models already in --results")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "zoo.md")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per model before its worker is killed")
    parser.add_argument("--max-rss-gb", type=float, default=10.0, help="worker memory cap")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()

    chosen = [c for c in cases() if (not args.only or c.family in args.only)
              and (not args.model or c.model in args.model)]
    chosen = chosen[:args.limit] if args.limit is not None else chosen
    done = {} if args.fresh else load(args.results)
    if not args.report_only:
        run_all(Pool1(worker, asdict), chosen, done, args.results, args.timeout, args.max_rss_gb,
                label=lambda case: f"{case.family} {case.model}", reason_width=150)
    rows = load(args.results)
    measured = [rows[c.model] for c in chosen if c.model in rows]
    total = len(cases())
    note = None
    if len(measured) < total:
        note = f"Partial run: {len(measured)} of {total} models measured."
    write_doc(measured, args.doc, note)


if __name__ == "__main__":
    main()
