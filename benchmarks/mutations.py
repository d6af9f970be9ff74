"""The full bug-injection run: ``python benchmarks/mutations.py [--count 3000] [--seed 0]``.

Every one-number mutation of the examples and the reference zoo, then ``count`` random
mutants of generated models (CNNs 1-D to 3-D with transposed convolutions, nn.Sequential
stacks, MLPs, RNNs, attention, embeddings, U-Net skips), each scored against real CPU
forwards by benchmarks/mutants.py. Writes docs/mutations.md from the measured scores.
"""
from __future__ import annotations

import argparse
import collections
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import mutants  # noqa: E402

GOALS = "(a) 100% detected, (b) 100% located, (c) at least 99% of rows right"


def family(name: str) -> str:
    return name.split(":")[0] if name.startswith("zoo:") else name.split("-")[0]


def run(count: int, seed: int) -> tuple[list[mutants.Score], float]:
    torch.set_num_threads(1)
    start = time.perf_counter()
    scores = [mutants.score(source, mutation) for source, mutation in mutants.sample(count, seed, ROOT)]
    return scores, time.perf_counter() - start


def table(scores: list[mutants.Score]) -> list[str]:
    rows = ["| models | mutants | still run | false errors on those | run but lose the batch | caught | "
            "rejected by the constructor | scored | (a) detected | (b) located | (c) rows right |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    groups: dict[str, list[mutants.Score]] = collections.defaultdict(list)
    for s in scores:
        groups[family(s.model)].append(s)
    for name, group in sorted(groups.items()) + [("**all**", scores)]:
        scored = [s for s in group if s.status == "scored"]
        count = collections.Counter(s.status for s in group)
        rows_total = sum(s.rows for s in scored)
        rows_right = sum(s.rows_right for s in scored)
        false = sum(1 for s in group if s.status == "equivalent" and not s.perfect)
        silent = sum(1 for s in group if s.status == "silent" and s.detected)
        rows.append(f"| {name} | {len(group)} | {count['equivalent']} | {false} | {count['silent']} | {silent} | "
                    f"{count['invalid']} | {len(scored)} | "
                    f"{_pct(sum(s.detected for s in scored), len(scored))} | "
                    f"{_pct(sum(s.located for s in scored), len(scored))} | "
                    f"{_pct(rows_right, rows_total)} of {rows_total} |")
    return rows


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "--"


def commit() -> str:
    """The commit measured, read before the run starts; '+changes' when the tree differs from it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return head.stdout.strip() + ("+changes" if dirty else "")


def page(scores: list[mutants.Score], seconds: float, count: int, seed: int, measured: str) -> str:
    misses = [s for s in scores if s.status != "invalid" and not s.perfect]
    lines = [
        "# Bug injection",
        "",
        "One integer in a valid model is changed (a layer's constructor argument: features, channels, "
        "kernel, stride, padding, a helper's width; or a literal of a `view`/`reshape`), and shapecheck's "
        "report is scored against real CPU forwards. Ground truth never reads shapecheck's trace:",
        "",
        "- **(a) detected**: the report has an error;",
        "- **(b) located**: the first failing layer is the one a real forward fails in, and its finding "
        "points at the line that creates that layer (inside a helper function or an `nn.Sequential(...)` too), "
        "or for a functional op the line that calls it;",
        "- **(c) rows right**: each failing layer is rebuilt to accept what it received (a `view` to "
        "`(rows, features)` becomes one row per sample), and every module call from the first failure on "
        "must have the real forward's output shapes, call by call. Where no rebuilt layer can mend a "
        "failure (a kernel larger than its map, a `cat` of maps that disagree) the real run and the trace "
        "both stop there.",
        "",
        "Some mutants run but fold the batch into the features (`view(-1, N)` with N off by a factor): "
        "a real forward raises nothing, yet the output has the wrong number of rows; the report must catch "
        "them (SHP004). Mutants that otherwise still run are not bugs: for them the report must have no error and every row must "
        "equal the real forward's (the \"false errors\" column counts those that do not). Numbers a "
        "constructor rejects (`GroupNorm` groups that do not divide the channels) are not shape bugs either.",
        "",
        f"Goals: {GOALS}. Measured at commit {measured} with torch {torch.__version__}, Python "
        f"{platform.python_version()}: {len(scores)} mutants in {seconds:.0f} s "
        f"(`python benchmarks/mutations.py --count {count} --seed {seed}`). "
        "tests/test_mutations.py samples the same harness in CI (300 generated mutants and 24 of the examples').",
        "",
        *table(scores),
        "",
        "## Cases below a goal",
        "",
    ]
    lines += [f"- {s.model}, {s.mutation}: {s.why}" for s in misses] or ["None."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="generated mutants, after the examples' own")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "mutations.md")
    options = parser.parse_args(argv)
    measured = commit()
    scores, seconds = run(options.count, options.seed)
    options.out.write_text(page(scores, seconds, options.count, options.seed, measured))
    print("\n".join(table(scores)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
