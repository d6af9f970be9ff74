"""Does an analysis leave the model exactly as it was? Every torchvision family, timm, Hugging
Face models from config and the reference zoo, with real weights. Writes docs/untouched.md.

    .venv/bin/python benchmarks/untouched.py                     # torchvision, HF, zoo, timm every 10th
    .venv/bin/python benchmarks/untouched.py --timm-every 1      # the full timm zoo (hours)
    .venv/bin/python benchmarks/untouched.py --only hf --only zoo
    .venv/bin/python benchmarks/untouched.py --report-only       # docs/untouched.md from the results so far

The rows behind docs/untouched.md are kept in docs/results/untouched.jsonl: pass
``--results docs/results/untouched.jsonl`` to resume or extend that run.

Per model, in one worker process: built on CPU with real (seeded, randomly initialised)
weights; timm models are built on meta and given uninitialised CPU storage (``to_empty``:
real tensors, without the random fills that took 40 s for the largest), and a parameter's
gradient set as after a training step; the state
taken with ``shapecheck.fingerprint`` (every module's attributes and tables, every tensor's
object, device, dtype, shape, requires_grad, values and grad, every flag and hook); then
``shapecheck.analyze`` in eval mode and in train mode, at batch 1; then the state again. A
model is "changed" when any key of the fingerprint differs, and the first differences are
recorded. The seconds of each analysis and of the fingerprint are recorded too.

Results go to a JSON lines file (default /tmp/untouched.jsonl) as they finish; a killed run
resumes where it stopped (benchmarks/isolated.py).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # isolated.py, also under python -m

from isolated import ROOT, Pool1, cell, first_line, load, measured_at, prepare_worker, run_all, serve  # noqa: E402

DEFAULT_RESULTS = Path("/tmp/untouched.jsonl")
SOURCES = ("torchvision", "hf", "zoo", "timm")

# Hugging Face models from a small config: no download, the architectures' own code.
HF_SMALL = dict(hidden_size=64, num_attention_heads=4, intermediate_size=128, num_hidden_layers=2)
HF = {
    "bert": ("BertModel", "BertConfig", HF_SMALL, ["16:int64"]),
    "gpt2": ("GPT2LMHeadModel", "GPT2Config", dict(n_layer=2, n_embd=64, n_head=4), ["16:int64"]),
    "vit": ("ViTModel", "ViTConfig", {**HF_SMALL, "image_size": 32, "patch_size": 8}, ["3x32x32"]),
    "llama": ("LlamaForCausalLM", "LlamaConfig", {**HF_SMALL, "num_key_value_heads": 2, "vocab_size": 128},
              ["16:int64"]),
    "t5": ("T5Model", "T5Config", dict(d_model=64, d_ff=128, num_layers=2, num_heads=4, d_kv=16, vocab_size=128),
           ["16:int64", "decoder_input_ids=8:int64"]),
    "whisper": ("WhisperModel", "WhisperConfig", dict(
        encoder_layers=1, decoder_layers=1, d_model=64, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=80, max_source_positions=50),
        ["80x100", "decoder_input_ids=5:int64"]),
}


def cases(only: list[str], timm_every: int, timm_offset: int = 0) -> list[dict]:
    """One payload per model: its key, source, name and input specs."""
    found: list[dict] = []
    if "torchvision" in only:
        import zoo

        found += [{"model": f"torchvision/{c.model}", "source": "torchvision", "family": c.family,
                   "name": c.model, "inputs": c.inputs, "kwargs": c.kwargs} for c in zoo.cases()]
    if "hf" in only:
        found += [{"model": f"hf/{key}", "source": "hf", "family": "transformers", "name": key,
                   "inputs": HF[key][3], "kwargs": {}} for key in HF]
    if "zoo" in only:
        from shapecheck.zoo import ZOO

        found += [{"model": f"zoo/{key}", "source": "zoo", "family": "reference zoo", "name": key,
                   "inputs": [entry.input], "kwargs": {}} for key, entry in ZOO.items()]
    if "timm" in only:
        import timm

        found += [{"model": f"timm/{name}", "source": "timm", "family": "timm", "name": name, "inputs": None,
                   "kwargs": {}} for name in timm.list_models()[timm_offset::timm_every]]
    return found


# ---------------------------------------------------------------- worker (child process)

def build(case: dict):  # type: ignore[no-untyped-def]
    import torch

    torch.manual_seed(0)
    if case["source"] == "torchvision":
        import zoo

        return zoo._build(zoo.Case(case["family"], case["name"], case["inputs"], case["kwargs"]))
    if case["source"] == "hf":
        import transformers

        model_class, config_class, config, _ = HF[case["name"]]
        return getattr(transformers, model_class)(getattr(transformers, config_class)(**config)).eval()
    if case["source"] == "zoo":
        from shapecheck.zoo import ZOO

        return ZOO[case["name"]].factory().eval()
    import timm

    # Built on meta, then given real but uninitialised CPU storage: a billion-parameter
    # model's random init took 40 s, and the check needs real tensors, not their values.
    with torch.device("meta"):
        model = timm.create_model(case["name"], pretrained=False).eval()
    model.to_empty(device="cpu")
    case["inputs"] = ["x".join(map(str, model.pretrained_cfg.get("input_size", (3, 224, 224))))]
    trainable = next((p for p in model.parameters() if p.requires_grad), None)
    if trainable is not None:  # as after a training step
        trainable.grad = torch.ones_like(trainable)
    return model


def measure(case: dict) -> dict:
    import shapecheck
    from shapecheck.fingerprint import changes, fingerprint

    row = dict(case)
    row["measured_at"] = measured_at()
    try:
        model = build(row)
    except Exception as exc:  # noqa: BLE001 - not shapecheck's: counted apart
        return {**row, "status": "build fails", "reason": first_line(exc)[:300]}
    row["params"] = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    start = time.perf_counter()
    before = fingerprint(model)
    row["fingerprint_s"] = time.perf_counter() - start
    crashes = []
    for mode in ("eval", "train"):
        start = time.perf_counter()
        try:
            shapecheck.analyze(model, row["inputs"], batch=1, mode=mode)
        except Exception as exc:  # noqa: BLE001 - a crash must leave the model as it was too
            crashes.append(f"{mode}: {first_line(exc)[:200]}")
        row[f"analyze_{mode}_s"] = time.perf_counter() - start
    differences = changes(before, fingerprint(model))
    row["changes"] = len(differences)
    row["first_changes"] = [line[:300] for line in differences[:5]]
    row["crashes"] = crashes
    row["status"] = "changed" if differences else "untouched"
    return row


def answer(item: dict) -> dict:
    try:
        return measure(item)
    except BaseException as exc:  # noqa: BLE001 - the worker must answer
        return {**item, "status": "harness error", "reason": repr(exc)[:300]}


def worker(conn: Connection) -> None:
    prepare_worker("torchvision", "timm", "transformers")
    serve(conn, answer)


# ---------------------------------------------------------------- the document

def write_doc(rows: list[dict], doc: Path) -> None:
    by_family: dict[str, Counter] = {}
    for row in rows:
        by_family.setdefault(row.get("family", "?"), Counter())[row["status"]] += 1
    lines = [
        "# The model is left untouched",
        "",
        "<!-- Generated by benchmarks/untouched.py; edit that script, not this file. -->",
        "",
        "Every model below was built on CPU with real weights (seeded; timm's built on meta and",
        "given uninitialised CPU storage, with a parameter's gradient set as after a training",
        "step), fingerprinted with",
        "`shapecheck.fingerprint` (every module's attributes and tables, every tensor's object,",
        "device, dtype, shape, `requires_grad`, values and gradient, every flag and hook),",
        "analyzed in eval mode and in train mode, and fingerprinted again. Goal: 0 changed.",
        "",
        _measured(rows),
        "",
        "| source | models checked | changed | untouched | analysis crashed (model still untouched) "
        "| not checked (build failed, timeout, memory cap) |",
        "|---|---|---|---|---|---|",
    ]
    for family, counts in sorted(by_family.items()):
        checked = counts["changed"] + counts["untouched"]
        crashed = sum(1 for r in rows if r.get("family") == family and r.get("crashes") and r["status"] == "untouched")
        lines.append(f"| {family} | {checked} | {counts['changed']} | {counts['untouched']} | {crashed} | "
                     f"{counts['build fails'] + counts['harness error'] + counts['timeout'] + counts['memory']} |")
    total = Counter(row["status"] for row in rows)
    lines.append(f"| **all** | **{total['changed'] + total['untouched']}** | **{total['changed']}** | "
                 f"**{total['untouched']}** | | |")
    lines += ["", "On a GPU: `tests/test_untouched.py` with every fixture pattern and the zoo sample moved",
              "to CUDA (the device is part of the fingerprint), on one H200 with torch 2.11: 153 passed",
              "([the run's log](results/untouched_gpu.log)). CI runs the CPU half of that file."]
    changed = [r for r in rows if r["status"] == "changed"]
    other = [r for r in rows if r["status"] not in ("changed", "untouched")]
    crashed = [r for r in rows if r.get("crashes")]
    if changed:
        lines += ["", "## Changed", "", "| model | first differences |", "|---|---|"]
        lines += [f"| {r['model']} | {cell('; '.join(r['first_changes']))} |" for r in changed]
    if crashed:
        lines += ["", "## Analyses that raised (the model was still checked after)", "", "| model | error |", "|---|---|"]
        lines += [f"| {r['model']} | {cell('; '.join(r['crashes']))} |" for r in crashed]
    if other:
        lines += ["", "## Not checked", "", "| model | status | reason |", "|---|---|---|"]
        lines += [f"| {r['model']} | {r['status']} | {cell(r.get('reason', ''))} |" for r in other]
    doc.write_text("\n".join(lines) + "\n")


def _measured(rows: list[dict]) -> str:
    """Where the rows were measured: the commit of most, and how many came from others."""
    commits = Counter(row.get("measured_at", "?") for row in rows)
    (most, count), others = commits.most_common(1)[0], len(rows) - commits.most_common(1)[0][1]
    rest = (f"; the other {others} at {len(commits) - 1} earlier commits of the same work (each row's commit is in "
            "[results/untouched.jsonl](results/untouched.jsonl))") if others else ""
    return f"Measured with one thread: {count} models at {most}{rest}."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=SOURCES, help="Sources to check (repeatable).")
    parser.add_argument("--timm-every", type=int, default=10, help="Every n-th name of timm.list_models().")
    parser.add_argument("--timm-offset", type=int, default=0,
                        help="Start at this name: two runs with --timm-every 2 and offsets 0 and 1 split the zoo.")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "untouched.md")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--max-rss-gb", type=float, default=16)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    chosen = cases(args.only or list(SOURCES), args.timm_every, args.timm_offset)
    if not args.report_only:
        pool: Pool1[dict] = Pool1(worker, lambda case: case)
        run_all(pool, chosen, load(args.results), args.results, args.timeout, args.max_rss_gb,
                lambda case: case["model"], 80)
    keys = {case["model"] for case in chosen}
    write_doc([row for key, row in load(args.results).items() if key in keys], args.doc)
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
