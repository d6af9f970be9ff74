"""The harness shared by the benchmarks that measure one model at a time in a worker process
(benchmarks/zoo.py, benchmarks/timm_sweep.py).

A model can hang, crash the interpreter or eat the machine's memory, and a long sweep must
survive that and resume where it stopped. So every case goes to one spawned worker process
(``Pool1``), which is killed and replaced when it passes a timeout or a memory cap or dies; each
result is appended to a JSON lines file (``run_all``, ``load``) as soon as it is back.

The parent imports this file as a plain module (``from isolated import ...``), with the
benchmarks folder on ``sys.path``; the scripts put it there themselves, so ``python -m`` works too.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import subprocess
import time
import traceback
from collections.abc import Callable, Collection, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Generic, TypeVar

ROOT = Path(__file__).resolve().parent.parent

CaseT = TypeVar("CaseT")


# ---------------------------------------------------------------- worker (child process)

def tail(exc: BaseException, limit: int) -> str:
    """The last ``limit`` characters of the traceback: the frames that raised, in bounded rows."""
    return "".join(traceback.format_exception(exc))[-limit:]


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message``: a one-line reason for a table cell."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def flat_shapes(out: object) -> list[tuple[int, ...]]:
    """Every tensor's shape in a (nested) tuple/list/dict output, in order: what ``report.outputs`` lists."""
    import torch

    if isinstance(out, torch.Tensor):
        return [tuple(out.shape)]
    if isinstance(out, list | tuple):
        return [s for item in out for s in flat_shapes(item)]
    if isinstance(out, dict):
        return [s for item in out.values() for s in flat_shapes(item)]
    return []


def analyze_into(row: dict, model: Any, spec: str | list[str], tail_limit: int) -> Any:
    """Time ``shapecheck.analyze(model, spec, batch=1)`` and record it in ``row``: on a crash its
    reason and traceback (status "crash", returns None), else the report's device, outputs and
    findings (returns the report, for the caller's own checks)."""
    import shapecheck

    try:
        start = time.perf_counter()
        report = shapecheck.analyze(model, spec, batch=1)
        row["analyze_s"] = time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - a crash is a result
        row["analyze_s"] = time.perf_counter() - start
        row["status"] = "crash"
        row["reason"] = first_line(exc)[:300]
        row["traceback"] = tail(exc, tail_limit)
        return None
    row["device"] = report.device
    row["outputs"] = [list(s) for s in report.outputs]
    row["findings"] = [{"code": f.code, "severity": f.severity, "layer": f.layer, "message": f.message[:500]}
                       for f in report.findings]
    return report


def prepare_worker(*libraries: str) -> None:
    """Set the worker up before its first case: one torch thread (the machine is shared, timings
    comparable), warnings off, the model libraries imported, and shapecheck's one-time costs (rule
    imports, the first trace) spent on a tiny model rather than charged to the first real one."""
    import importlib
    import warnings

    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    for name in libraries:
        importlib.import_module(name)

    import shapecheck

    shapecheck.analyze(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2)),
                       "3x8x8", batch=1)


def serve(conn: Connection, answer: Callable[[dict], dict]) -> None:
    """The worker's loop: one result row for each payload the parent sends, until it sends None.
    ``answer`` must not raise (it turns its own failures into a row): the parent waits for one."""
    while True:
        item = conn.recv()
        if item is None:
            return
        conn.send(answer(item))


# ---------------------------------------------------------------- parent

def rss_gb(pid: int) -> float:
    """Resident memory of a process in GiB (Linux ``/proc``), 0.0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


class Pool1(Generic[CaseT]):
    """One worker process, fed one case at a time, replaced when it hangs, dies or grows too big.

    ``worker(conn)`` is the child's target (spawned, so it must be a module-level function);
    ``payload(case)`` is the dict sent to it, and also the start of the row recorded for a case
    the worker never answered (timeout / memory / worker died), so every row names its model."""

    def __init__(self, worker: Callable[[Connection], None], payload: Callable[[CaseT], dict]) -> None:
        self.worker = worker
        self.payload = payload
        self.ctx = mp.get_context("spawn")
        self.proc: BaseProcess | None = None
        self.conn: Connection | None = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
        self.proc = self.conn = None

    def close(self) -> None:
        """Let a live worker exit on its own (a None payload), then make sure it is gone."""
        if self.proc is not None and self.proc.is_alive():
            assert self.conn is not None
            self.conn.send(None)
            self.proc.join(10)
        self.kill()

    def run(self, case: CaseT, timeout: float, max_rss_gb: float) -> dict:
        """The worker's row for ``case``, or a timeout / memory / worker died row."""
        if self.proc is None or not self.proc.is_alive():
            self.conn, child = self.ctx.Pipe()
            self.proc = self.ctx.Process(target=self.worker, args=(child,), daemon=True)
            self.proc.start()
        assert self.conn is not None
        payload = self.payload(case)
        self.conn.send(payload)
        start = time.monotonic()
        while True:
            if self.conn.poll(0.5):
                try:
                    return self.conn.recv()
                except EOFError:
                    break
            if not self.proc.is_alive():
                break
            if time.monotonic() - start > timeout:
                self.kill()
                return {**payload, "status": "timeout", "reason": f"no result within {timeout:.0f} s"}
            if rss_gb(self.proc.pid) > max_rss_gb:
                self.kill()
                return {**payload, "status": "memory", "reason": f"worker passed {max_rss_gb:g} GB RSS"}
        code = self.proc.exitcode
        self.kill()
        return {**payload, "status": "worker died", "reason": f"worker exit code {code}"}


def run_all(pool: Pool1[CaseT], chosen: Sequence[CaseT], done: Collection[str], path: Path, timeout: float,
            max_rss_gb: float, label: Callable[[CaseT], str], reason_width: int) -> None:
    """Measure the chosen cases whose model is not in ``done``, one after another, appending each
    row (with its wall time) to the JSON lines file at ``path`` as soon as it is back, so a killed
    run resumes where it stopped; the pool is closed at the end."""
    todo = [case for case in chosen if pool.payload(case)["model"] not in done]
    print(f"{len(chosen)} selected, {len(chosen) - len(todo)} already measured, {len(todo)} to run", flush=True)
    try:
        with path.open("a") as out:
            for i, case in enumerate(todo, 1):
                start = time.perf_counter()
                row = pool.run(case, timeout, max_rss_gb)
                row["wall_s"] = time.perf_counter() - start
                out.write(json.dumps(row) + "\n")
                out.flush()
                print(f"[{i}/{len(todo)}] {label(case)}: {row['status']} {row.get('reason', '')[:reason_width]} "
                      f"({row['wall_s']:.1f}s)", flush=True)
    finally:
        pool.close()


def load(path: Path) -> dict[str, dict]:
    """The rows of a JSON lines file by model name; a model measured again keeps its last row."""
    rows: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["model"]] = row
    return rows


# ---------------------------------------------------------------- the documents

def measured_at() -> str:
    """Which shapecheck ran: a snapshot made with ``git archive`` (a COMMIT file beside the
    package, put first on PYTHONPATH) or this checkout's HEAD, flagged when shapecheck/ has
    uncommitted edits."""
    import shapecheck

    base = Path(shapecheck.__file__).resolve().parent.parent
    if (base / "COMMIT").exists():
        return f"commit `{(base / 'COMMIT').read_text().strip()}` (a `git archive` snapshot of shapecheck/)"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "shapecheck"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return f"commit `{commit}`" + (" plus uncommitted edits in shapecheck/" if dirty else "")


def cell(text: str) -> str:
    """Text made safe for one Markdown table cell: pipes escaped, newlines flattened."""
    return text.replace("|", "\\|").replace("\n", " ")
