"""Every timm architecture at its default input, built on meta: does shapecheck analyze it
cleanly, and what does it cost next to a bare meta build and forward? Writes docs/timm.md.

    .venv/bin/python benchmarks/timm_sweep.py                 # the whole list (resumes)
    .venv/bin/python benchmarks/timm_sweep.py --limit 20      # the first 20 names
    .venv/bin/python benchmarks/timm_sweep.py --start 500 --limit 100
    .venv/bin/python benchmarks/timm_sweep.py --report-only   # docs/timm.md from the results so far

To measure exactly one commit while the checkout is being edited, run it against a snapshot:

    git archive HEAD shapecheck | tar -x -C /tmp/snap && git rev-parse --short HEAD > /tmp/snap/COMMIT
    PYTHONPATH=/tmp/snap .venv/bin/python benchmarks/timm_sweep.py

Per model, in one worker process: (a) bare cost = meta build time + bare meta forward time;
(b) shapecheck cost = ``shapecheck.analyze(model, spec, batch=1)`` on the same built model.
Checks: no crash, no error finding, no SHP102, ``report.outputs`` equals the bare forward's
output shapes (every tensor of a tuple/dict output, in order). A model that cannot even be
built or run bare on meta is "bare fails": not shapecheck's fault, counted apart.

Results go to a JSON lines file (default /tmp/timm_sweep.jsonl), one line per model as it
finishes, so a killed run continues where it stopped. The worker is one subprocess, fed one
name at a time; a model that runs past --timeout seconds or past --max-rss-gb of memory has
its worker killed (recorded as timeout / memory) and a fresh worker takes the next name.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # isolated.py, also under python -m

from isolated import (ROOT, Pool1, analyze_into, cell, first_line, flat_shapes, load, measured_at,  # noqa: E402
                      prepare_worker, run_all, serve, tail)

DEFAULT_RESULTS = Path("/tmp/timm_sweep.jsonl")


# ---------------------------------------------------------------- worker (child process)

def measure(name: str) -> dict:
    import timm
    import torch

    row: dict = {"model": name}
    try:
        start = time.perf_counter()
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False).eval()
        row["build_s"] = time.perf_counter() - start
        shape = tuple(model.pretrained_cfg.get("input_size", (3, 224, 224)))
        row["input"] = "x".join(map(str, shape))
        start = time.perf_counter()
        with torch.no_grad():
            bare = model(torch.empty(1, *shape, device="meta"))
        row["forward_s"] = time.perf_counter() - start
        row["bare_outputs"] = [list(s) for s in flat_shapes(bare)]
        del bare
    except Exception as exc:  # noqa: BLE001 - recorded, not shapecheck's fault
        row["status"] = "bare fails"
        row["reason"] = first_line(exc)[:300]
        row["traceback"] = tail(exc, 3000)
        return row
    report = analyze_into(row, model, row["input"], 3000)
    if report is None:
        return row
    errors = [f for f in report.findings if f.severity == "error"]
    shp102 = [f for f in report.findings if f.code == "SHP102"]
    if errors:
        row["status"] = "error finding"
        row["reason"] = "; ".join(f"{f.code} {f.layer or ''}: {f.message}" for f in errors)[:500]
    elif shp102:
        row["status"] = "SHP102"
        row["reason"] = "; ".join(f"{f.layer or ''}: {f.message}" for f in shp102)[:500]
    elif row["outputs"] != row["bare_outputs"]:
        row["status"] = "outputs mismatch"
        row["reason"] = f"report {row['outputs']} vs bare {row['bare_outputs']}"[:500]
    else:
        row["status"] = "pass"
    return row


def answer(item: dict) -> dict:
    """The worker's row for one name: measured, or "harness error" if measuring itself failed."""
    name = item["model"]
    try:
        return measure(name)
    except BaseException as exc:  # noqa: BLE001 - the worker must answer
        return {"model": name, "status": "harness error", "reason": repr(exc)[:300]}


def worker(conn: Connection) -> None:
    prepare_worker("timm")  # timm imported once, before any timing
    serve(conn, answer)


def verify_unused(name: str, layers: list[str]) -> dict:
    """Is an SHP102 true? Count the calls of each flagged module in a bare meta forward (forward
    pre-hooks on every module, independent of shapecheck); also say whether it holds parameters
    (a module that is never called may still lend its weights to the forward)."""
    import timm
    import torch

    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False).eval()
    shape = tuple(model.pretrained_cfg.get("input_size", (3, 224, 224)))
    modules = dict(model.named_modules(remove_duplicate=False))
    calls = {layer: 0 for layer in layers}
    handles = []
    for layer in layers:
        module = modules.get(layer)
        if module is None:
            continue
        for sub in module.modules():  # a call of anything inside it counts as running it
            handles.append(sub.register_forward_pre_hook(lambda *_, layer=layer: calls.__setitem__(layer, calls[layer] + 1)))
    with torch.no_grad():
        model(torch.empty(1, *shape, device="meta"))
    for handle in handles:
        handle.remove()
    return {layer: {"found": layer in modules, "calls": calls[layer],
                    "params": sum(p.numel() for p in modules[layer].parameters()) if layer in modules else 0}
            for layer in layers}


def verify_all(rows: dict[str, dict], path: Path) -> dict[str, dict]:
    """Verify every SHP102 row once (results cached in ``path``): the flagged modules' call counts."""
    import torch

    torch.set_num_threads(1)
    done = load(path) if path.exists() else {}
    with path.open("a") as out:
        for row in rows.values():
            if row["model"] in done:
                continue
            layers = sorted({f["layer"] for f in row.get("findings", ()) if f["code"] == "SHP102" and f["layer"]})
            if not layers:
                continue
            try:
                result = {"model": row["model"], "layers": verify_unused(row["model"], layers)}
            except Exception as exc:  # noqa: BLE001
                result = {"model": row["model"], "error": f"{type(exc).__name__}: {exc}"[:300]}
            done[row["model"]] = result
            out.write(json.dumps(result) + "\n")
            out.flush()
    return done


def shp102_verdict(check: dict | None) -> str:
    if check is None:
        return "not verified"
    if "error" in check:
        return f"not verified ({check['error']})"
    called = [k for k, v in check["layers"].items() if v["calls"]]
    if called:
        return "FALSE: called in a bare forward: " + ", ".join(called)
    weighted = [k for k, v in check["layers"].items() if v["params"]]
    return "true: never called in a bare forward" + (
        f" (holds parameters: {', '.join(weighted)}; their use elsewhere is not checked)" if weighted else "")


# ---------------------------------------------------------------- parent

def sweep(names: list[str], path: Path, timeout: float, max_rss_gb: float) -> None:
    run_all(Pool1(worker, lambda name: {"model": name}), names, load(path), path, timeout, max_rss_gb,
            label=str, reason_width=120)


# ---------------------------------------------------------------- the document

def family(name: str) -> str:
    return re.split(r"[_\d]", name, maxsplit=1)[0] or name


def write_doc(rows: dict[str, dict], total: int, doc: Path, note: str | None,
              checks: dict[str, dict] | None = None) -> None:
    import timm
    import torch

    where = measured_at()
    status = Counter(r["status"] for r in rows.values())
    measured = [r for r in rows.values() if "analyze_s" in r and "forward_s" in r]
    timed = [r for r in measured if r["status"] != "crash"]
    build = sum(r["build_s"] for r in timed)
    forward = sum(r["forward_s"] for r in timed)
    analyze = sum(r["analyze_s"] for r in timed)
    ratios = [r["analyze_s"] / (r["build_s"] + r["forward_s"]) for r in timed]
    fwd_ratios = [r["analyze_s"] / r["forward_s"] for r in timed if r["forward_s"] > 0]
    warnings = Counter(f["code"] for r in rows.values() for f in r.get("findings", ())
                       if f["severity"] != "error")
    warned_models = Counter(f["code"] for r in rows.values()
                            for f in {x["code"]: x for x in r.get("findings", ()) if x["severity"] != "error"}.values())
    on_cpu = sorted(r["model"] for r in rows.values() if r.get("device") == "cpu")
    shapecheck_fail = ("crash", "error finding", "SHP102", "outputs mismatch")
    harness = ("timeout", "memory", "worker died", "harness error")
    lines = [
        "# timm sweep",
        "",
        "Every architecture in `timm.list_models()` at its default input size "
        "(`model.pretrained_cfg['input_size']`, batch 1), built on meta with "
        "`timm.create_model(name, pretrained=False).eval()` under `torch.device('meta')`. "
        "Written by `benchmarks/timm_sweep.py`; rerun with `.venv/bin/python benchmarks/timm_sweep.py`.",
        "",
        f"Measured at {where} with torch {torch.__version__}, timm {timm.__version__}, "
        f"Python {sys.version.split()[0]}, one CPU thread (`torch.set_num_threads(1)`), "
        "on a shared 2-core machine (timings are noisy: another job used the other core).",
        "",
    ]
    if note:
        lines += [f"**{note}**", ""]
    passed = status["pass"]
    checks = checks or {}
    verdicts = {r["model"]: shp102_verdict(checks.get(r["model"])) for r in rows.values() if r["status"] == "SHP102"}
    true_102 = sum(v.startswith("true") for v in verdicts.values())
    false_102 = sum(v.startswith("FALSE") for v in verdicts.values())
    lines += [
        "## Summary",
        "",
        f"- Architectures in `timm.list_models()`: **{total}**; measured: **{len(rows)}**",
        f"- Pass (no crash, no error finding, no SHP102, outputs equal the bare forward): **{passed}**",
        f"- shapecheck crashes: **{status['crash']}**",
        f"- error findings: **{status['error finding']}**",
        f"- SHP102 findings (and no error): **{status['SHP102']}** (checked against forward pre-hooks in a bare "
        f"meta forward: {true_102} true, the flagged modules are never called; {false_102} false, "
        f"a flagged module is called; {len(verdicts) - true_102 - false_102} not verified)",
        f"- outputs mismatch: **{status['outputs mismatch']}**",
        f"- bare fails (the model itself does not build or run on meta; not shapecheck's fault): "
        f"**{status['bare fails']}**",
        f"- stopped by the harness (timeout / memory cap / worker died): "
        f"**{sum(status[h] for h in harness)}**",
        "",
        "Checks are made per model: crash = `analyze` raised; error finding = a finding of severity "
        "error; SHP102; outputs mismatch = `report.outputs` differs from the output shapes of "
        "`model(torch.empty(1, *input_size, device='meta'))` (every tensor of a tuple output, in order).",
        "",
        "## Cost",
        "",
        f"Over the {len(timed)} models that built, ran bare and analyzed without a crash:",
        "",
        "| quantity | seconds |",
        "|---|---:|",
        f"| sum of meta build time | {build:.1f} |",
        f"| sum of bare meta forward time | {forward:.1f} |",
        f"| sum of `shapecheck.analyze` time | {analyze:.1f} |",
        "",
        "| ratio | value |",
        "|---|---:|",
        f"| sum(analyze) / sum(build + bare forward) | {analyze / (build + forward):.2f} |" if timed else "",
        f"| sum(analyze) / sum(bare forward) | {analyze / forward:.2f} |" if timed else "",
        f"| median per-model analyze / (build + bare forward) | {statistics.median(ratios):.2f} |" if ratios else "",
        f"| median per-model analyze / bare forward | {statistics.median(fwd_ratios):.2f} |" if fwd_ratios else "",
        "",
        "Order in the worker: build, bare forward, then analyze on the same model object (the bare "
        "forward runs first, so first-call costs inside timm's own code fall on it, not on analyze).",
        "",
    ]
    lines += ["One worker process runs the models one after another, so `analyze` profits from shapecheck's "
              "in-process memo of meta kernels warmed by the models before it, as it would in one pytest "
              "session; the worker's first `analyze` (on a tiny model) takes the one-time import costs.", ""]
    slow = sorted(timed, key=lambda r: -r["analyze_s"])[:10]
    if slow:
        lines += ["Slowest `analyze` calls:", "", "| model | input | analyze s | build s | bare forward s |",
                  "|---|---|---:|---:|---:|"]
        lines += [f"| {r['model']} | {r['input']} | {r['analyze_s']:.2f} | {r['build_s']:.2f} | {r['forward_s']:.2f} |"
                  for r in slow]
        lines.append("")
    lines += [f"`analyze` ran on meta for {sum(r.get('device') == 'meta' for r in rows.values())} models"
              + (f" and fell back to CPU for {len(on_cpu)}." if on_cpu else "."), ""]
    if on_cpu:
        lines += [f"`analyze` fell back to a CPU run (the forward reads tensor values) for {len(on_cpu)} "
                  f"model(s): {', '.join(on_cpu)}.", ""]
    lines += ["## Warnings", "", "Non-error findings over all measured models (passing ones included):", "",
              "| code | findings | models |", "|---|---:|---:|"]
    lines += [f"| {code} | {n} | {warned_models[code]} |" for code, n in sorted(warnings.items())] or ["| none | 0 | 0 |"]
    by_code: dict[str, list[str]] = defaultdict(list)
    for r in rows.values():
        for code in sorted({f["code"] for f in r.get("findings", ()) if f["severity"] != "error"}):
            by_code[code].append(r["model"])
    lines += [""] + [f"- {code}: {', '.join(models)}" for code, models in sorted(by_code.items())]
    lines += ["", "## Models that did not pass", "",
              "| model | input | result | reason |", "|---|---|---|---|"]
    order = {s: i for i, s in enumerate((*shapecheck_fail, *harness, "bare fails"))}
    failed = sorted((r for r in rows.values() if r["status"] != "pass"),
                    key=lambda r: (order.get(r["status"], 99), r["model"]))
    lines += [f"| {r['model']} | {r.get('input', '')} | {r['status']} | {cell(r.get('reason', ''))[:220]}"
              + (f" — **SHP102 {verdicts[r['model']]}**" if r["model"] in verdicts else "") + " |"
              for r in failed] or ["| (none) | | | |"]
    lines += ["", "## Per family", "",
              "Grouped by the name's prefix before the first `_` or digit.", "",
              "| family | models | pass | shapecheck failures | bare fails | harness | analyze s | build+forward s |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows.values():
        groups[family(r["model"])].append(r)
    for fam in sorted(groups):
        rs = groups[fam]
        t = [r for r in rs if "analyze_s" in r and "forward_s" in r and r["status"] != "crash"]
        lines.append(
            f"| {fam} | {len(rs)} | {sum(r['status'] == 'pass' for r in rs)} "
            f"| {sum(r['status'] in shapecheck_fail for r in rs)} | {sum(r['status'] == 'bare fails' for r in rs)} "
            f"| {sum(r['status'] in harness for r in rs)} | {sum(r['analyze_s'] for r in t):.1f} "
            f"| {sum(r['build_s'] + r['forward_s'] for r in t):.1f} |")
    doc.write_text("\n".join(line for line in lines if line is not None) + "\n")
    print(f"wrote {doc}: {len(rows)} measured, {passed} pass", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", type=int, default=0, help="skip the first K names of timm.list_models()")
    parser.add_argument("--limit", type=int, default=None, help="measure at most N names")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="JSON lines file (resumed)")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "timm.md")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per model before its worker is killed")
    parser.add_argument("--max-rss-gb", type=float, default=8.0, help="worker memory cap")
    parser.add_argument("--report-only", action="store_true", help="only write the doc from the results file")
    parser.add_argument("--verify-results", type=Path, default=Path("/tmp/timm_sweep_shp102.jsonl"),
                        help="JSON lines cache of the SHP102 checks (a bare forward with hooks)")
    parser.add_argument("--note", default=None, help="a line to print at the top of the doc (e.g. a partial run)")
    args = parser.parse_args()
    import timm

    names = timm.list_models()
    chosen = names[args.start:][:args.limit] if args.limit is not None else names[args.start:]
    if not args.report_only:
        sweep(chosen, args.results, args.timeout, args.max_rss_gb)
    rows = load(args.results)
    rows = {n: rows[n] for n in names if n in rows}
    note = args.note
    if note is None and len(rows) < len(names):
        note = f"Partial run: {len(rows)} of {len(names)} architectures measured."
    checks = verify_all({n: r for n, r in rows.items() if r["status"] == "SHP102"}, args.verify_results)
    write_doc(rows, len(names), args.doc, note, checks)


if __name__ == "__main__":
    main()
