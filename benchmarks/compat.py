"""Measure which torch releases the test suite passes on: ``python benchmarks/compat.py``.

Why this exists: pyproject.toml puts no upper bound on torch (a cap would make pip
downgrade a user's newer torch), and its lower bound must be a release the suite is known to
pass on. This script is the evidence for both: for each torch release it exports a commit
(``git archive``), installs it with its test extras into a venv that holds exactly that torch
and its torchvision, runs the whole suite there, and writes docs/compat.md from what it
measured. The torch and torchvision versions tried live only here, never in pyproject.toml
or a requirements file.

- One venv per release, ``.compat/venv-<torch>`` (git-ignored), built once and reused while
  it still holds that torch: a rerun reinstalls only the project.
- This machine's pip config installs torch from local wheels and caps it at LOCAL_TORCH;
  every other release comes from PyPI with ``PIP_CONFIG_FILE=/dev/null`` set for those pip
  commands only. The suite itself runs with the normal config (the isolated pre-commit hook
  test builds an environment of its own and must get the local wheels).
- Raw results go to ``.compat/results-<torch>.json``; docs/compat.md is regenerated from all of
  them, so measuring one release replaces its row and keeps the others.
- Releases run one after another, never in parallel.

Exit status: 0 when every requested release passed the suite, 1 when any failed or could
not be measured, 2 for usage errors.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPAT = ROOT / ".compat"
PAGE = ROOT / "docs" / "compat.md"
CIFAR10 = Path(os.environ.get("SHAPECHECK_CIFAR10", ROOT.parent / "shared/datasets/cifar10-jpeg.tar.gz"))

# The torchvision built for each torch release (check an addition with `pip index versions
# torchvision`). A `--torch` item may also name one itself: `--torch 2.15.0=0.29.2`.
TORCHVISION: dict[str, str] = {
    "2.4.1": "0.19.1",
    "2.5.1": "0.20.1",
    "2.6.0": "0.21.0",
    "2.14.1": "0.29.1",
    "2.15.0": "0.29.2",  # PyPI has no torchvision 0.30 yet; 0.29.2 declares torch>=2.14
}
DEFAULT_TORCH = "2.4.1,2.5.1,2.6.0,2.14.1,2.15.0"
# The release this machine's pip config (constraints: torch<=2.14.1) installs from local wheels.
LOCAL_TORCH = "2.14.1"
SUITE_TIMEOUT_S = 30 * 60
# -rfE: failures and errors in the short summary (pyproject's -ra is overridden). A module that
# fails to import (a missing aten op) must not hide how every other test fares on that release.
PYTEST_ARGS = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", "--continue-on-collection-errors"]
MIN_FREE_GB = 15  # a new venv with a CUDA build of torch takes 5-6 GB, its download as much again
MESSAGE_CHARS = 300

CLOSING = re.compile(r"^=*\s*(?P<body>(?:\d+ \w+(?:, )?)+) in [\d.]+s\b")
COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|warnings?|deselected)")
SUMMARY = re.compile(r"^(?P<kind>FAILED|ERROR) (?P<rest>.+)$")
NO_MATCH = re.compile(r"No matching distribution found for (?P<req>\S+)")


@dataclass
class Failure:
    """One failed or erroring test: its id and the first line of its error."""

    id: str
    kind: str  # "failed" or "error"
    message: str


@dataclass
class Result:
    """What one torch release did with the suite, as saved in .compat/results-<torch>.json."""

    torch: str
    torchvision: str
    commit: str = ""
    commit_short: str = ""
    # passed | failed | error (pytest ended otherwise) | timeout | unavailable | install failed
    status: str = ""
    passed: int | None = None
    failed: int | None = None
    errors: int | None = None
    skipped: int | None = None
    wall_s: float | None = None
    install_s: float | None = None
    failures: list[Failure] = field(default_factory=list)
    note: str = ""
    python: str = platform.python_version()
    measured_at: str = ""


# ---------------------------------------------------------------- arguments


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="HEAD", help="commit to test (default HEAD)")
    parser.add_argument("--torch", default=DEFAULT_TORCH,
                        help=f"comma list of torch releases, each optionally =TORCHVISION (default {DEFAULT_TORCH})")
    parser.add_argument("--page-only", action="store_true",
                        help="only rewrite docs/compat.md from the saved results")
    return parser.parse_args(argv)


def releases(spec: str) -> list[tuple[str, str]]:
    """``"2.4.1,2.15.0=0.29.2"`` -> [(torch, torchvision), ...]; unknown torch without = is an error."""
    pairs: list[tuple[str, str]] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        torch, _, vision = item.partition("=")
        vision = vision or TORCHVISION.get(torch, "")
        if not vision:
            raise ValueError(f"no torchvision known for torch {torch}: add it to TORCHVISION "
                             f"or write {torch}=TORCHVISION")
        pairs.append((torch, vision))
    return pairs


# ---------------------------------------------------------------- processes


def pip_env(from_pypi: bool) -> dict[str, str]:
    """The environment for a pip command: this machine's config, or none (PyPI only)."""
    env = {k: v for k, v in os.environ.items() if k != "PIP_CONFIG_FILE"}
    if from_pypi:
        env["PIP_CONFIG_FILE"] = os.devnull
    return env


def run_logged(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a command, append its command line and output to ``log``, and return it."""
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n[exit {proc.returncode}]\n\n")
    return proc


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout.strip()


# ---------------------------------------------------------------- venvs and installs


def venv_dir(torch: str) -> Path:
    return COMPAT / f"venv-{torch}"


def installed_version(venv: Path, dist: str) -> str | None:
    """The version of ``dist`` in ``venv`` (local tag such as +cu130 dropped), or None."""
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return proc.stdout.strip().split("+")[0] if proc.returncode == 0 else None


def pip_failure(proc: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """(status, note) for a failed pip command: 'unavailable' when PyPI has no such release."""
    text = proc.stdout + proc.stderr
    missing = NO_MATCH.search(text)
    if missing and missing.group("req").startswith(("torch==", "torchvision==")):
        return "unavailable", f"pip: no matching distribution found for {missing.group('req')}"
    errors = [line for line in text.splitlines() if line.startswith("ERROR")] or text.strip().splitlines()
    return "install failed", errors[-1] if errors else f"pip exited {proc.returncode}"


def check_disk() -> None:
    free_gb = shutil.disk_usage(COMPAT).free / 2**30
    if free_gb < MIN_FREE_GB:
        raise SystemExit(f"compat: only {free_gb:.0f} GB free under {COMPAT}; a new venv needs about {MIN_FREE_GB}")


def ensure_venv(torch: str, vision: str, log: Path) -> subprocess.CompletedProcess[str] | None:
    """Build ``.compat/venv-<torch>`` with torch and torchvision, unless it already has that torch.

    Returns the failed pip command, or None when the venv is ready.
    """
    venv = venv_dir(torch)
    if installed_version(venv, "torch") == torch:
        print(f"compat: reusing {venv.relative_to(ROOT)} (torch {torch})", flush=True)
        return None
    check_disk()
    print(f"compat: building {venv.relative_to(ROOT)} (torch {torch}, torchvision {vision})", flush=True)
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    from_pypi = torch != LOCAL_TORCH
    # A PyPI download is kept out of pip's cache: each release's CUDA wheels are several GB.
    cache = ["--no-cache-dir"] if from_pypi else []
    cmd = [str(venv / "bin" / "python"), "-m", "pip", "install", *cache, f"torch=={torch}", f"torchvision=={vision}"]
    proc = run_logged(cmd, log, pip_env(from_pypi))
    return proc if proc.returncode != 0 else None


def export(commit: str, dest: Path) -> None:
    """The commit's tree in ``dest``, as a one-commit git repo (pre-commit's try-repo needs one)."""
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", commit], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    assert archive.stdout is not None
    archive.stdout.close()
    if archive.wait() != 0:
        raise SystemExit(f"compat: git archive {commit} failed")
    ident = {"GIT_AUTHOR_NAME": "compat", "GIT_AUTHOR_EMAIL": "compat@localhost",
             "GIT_COMMITTER_NAME": "compat", "GIT_COMMITTER_EMAIL": "compat@localhost"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", f"export of {commit}"]):
        subprocess.run(["git", *args], cwd=dest, check=True, capture_output=True, env={**os.environ, **ident})


def install_project(torch: str, vision: str, tree: Path, log: Path) -> subprocess.CompletedProcess[str]:
    """pip install -e 'tree[test]' with torch and torchvision pinned, so pip leaves them alone."""
    python = venv_dir(torch) / "bin" / "python"
    cmd = [str(python), "-m", "pip", "install", "-e", f"{tree}[test]", f"torch=={torch}", f"torchvision=={vision}"]
    return run_logged(cmd, log, pip_env(torch != LOCAL_TORCH))


# ---------------------------------------------------------------- the suite


def run_suite(torch: str, tree: Path, junit: Path, log: Path) -> tuple[int | None, str, float]:
    """Run pytest in ``tree``: (exit code or None on timeout, output, wall seconds)."""
    env = pip_env(from_pypi=False)
    env["SHAPECHECK_CIFAR10"] = str(CIFAR10)
    cmd = [str(venv_dir(torch) / "bin" / "python"), *PYTEST_ARGS, f"--junitxml={junit}"]
    start = time.monotonic()
    # A session of its own, so that a timeout or Ctrl-C stops pytest and every process it started.
    with subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, start_new_session=True) as proc:
        try:
            output, _ = proc.communicate(timeout=SUITE_TIMEOUT_S)
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            code = None
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    wall = time.monotonic() - start
    log.write_text(f"$ {' '.join(cmd)}\n{output}\n[exit {code}]\n")
    return code, output, wall


def closing_counts(output: str) -> dict[str, int]:
    """passed / failed / errors / skipped from pytest's closing line (0 where it names none)."""
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    for line in reversed(output.splitlines()):
        match = CLOSING.match(line.strip())
        if match:
            for number, word in COUNT.findall(match.group("body")):
                key = "errors" if word.startswith("error") else word
                if key in counts:
                    counts[key] = int(number)
            break
    return counts


def junit_key(test_id: str) -> tuple[str, str]:
    """A pytest node id as junitxml names it: (classname, name)."""
    path, *rest = test_id.split("::")
    module = path.removesuffix(".py").replace("/", ".")
    if not rest:
        return "", module
    return ".".join([module, *rest[:-1]]), rest[-1]


def junit_messages(junit: Path) -> dict[tuple[str, str], str]:
    """Each failed or erroring test case's message, by (classname, name)."""
    if not junit.exists():
        return {}
    messages: dict[tuple[str, str], str] = {}
    for case in ET.parse(junit).iter("testcase"):
        for child in case:
            if child.tag in ("failure", "error"):
                key = (case.get("classname", ""), case.get("name", ""))
                messages.setdefault(key, case_message(child.get("message") or "", child.text or ""))
    return messages


def case_message(message: str, text: str) -> str:
    """A junitxml failure's message; for a collection error, the exception from its traceback."""
    if message and message != "collection failure":
        return message
    raised = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    return raised[0] if raised else message or text


def first_line(text: str) -> str:
    """The error's first line, with the next one when the first only names the type
    (``ImportError:`` whose words follow on their own line)."""
    lines = [part.strip() for part in text.splitlines() if part.strip()]
    line = " ".join(lines[:2]) if len(lines) > 1 and lines[0].endswith(":") else (lines[0] if lines else "")
    return line if len(line) <= MESSAGE_CHARS else line[:MESSAGE_CHARS - 3] + "..."


def failures(output: str, junit: Path) -> list[Failure]:
    """The tests pytest's short summary names, each with its error's first line from junitxml."""
    messages = junit_messages(junit)
    found = []
    for line in output.splitlines():
        match = SUMMARY.match(line)
        if match:
            test_id, shown = split_summary(match.group("rest"), messages)
            kind = "failed" if match.group("kind") == "FAILED" else "error"
            found.append(Failure(test_id, kind, first_line(messages.get(junit_key(test_id)) or shown)))
    return found


def split_summary(rest: str, messages: dict[tuple[str, str], str]) -> tuple[str, str]:
    """A short-summary line after FAILED/ERROR -> (test id, message shown).

    An id may hold spaces and " - " (parametrized ids), and pytest leaves out the message when
    the line is too long, so the id is the longest prefix that junitxml knows.
    """
    cuts = [len(rest), *(m.start() for m in reversed(list(re.finditer(" - ", rest))))]
    for cut in cuts:
        if junit_key(rest[:cut]) in messages:
            return rest[:cut], rest[cut + 3:]
    test_id, _, shown = rest.partition(" - ")
    return test_id, shown


def suite_result(result: Result, code: int | None, output: str, wall: float, junit: Path) -> Result:
    result.wall_s = round(wall, 1)
    if code is None:
        result.status = "timeout"
        result.note = f"the suite ran past {SUITE_TIMEOUT_S // 60} minutes and was stopped"
        return result
    counts = closing_counts(output)
    result.passed, result.failed, result.errors, result.skipped = (
        counts["passed"], counts["failed"], counts["errors"], counts["skipped"])
    result.failures = failures(output, junit)
    result.status = {0: "passed", 1: "failed"}.get(code, "error")
    if result.status == "error":
        result.note = f"pytest exited {code}: {first_line(output.strip().splitlines()[-1] if output.strip() else '')}"
    return result


# ---------------------------------------------------------------- one release


def measure(torch: str, vision: str, commit: str) -> Result:
    """Install ``commit`` next to this torch and torchvision and run the suite there."""
    result = Result(torch, vision, commit, commit[:7],
                    measured_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    pip_log, pytest_log = COMPAT / f"pip-{torch}.log", COMPAT / f"pytest-{torch}.log"
    pip_log.write_text("")
    start = time.monotonic()
    failed = ensure_venv(torch, vision, pip_log)
    with tempfile.TemporaryDirectory(prefix=f"shapecheck-compat-{torch}-") as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        if failed is None:
            export(commit, tree)
            print(f"compat: installing {commit[:7]} into {venv_dir(torch).relative_to(ROOT)}", flush=True)
            proc = install_project(torch, vision, tree, pip_log)
            failed = proc if proc.returncode != 0 else None
        result.install_s = round(time.monotonic() - start, 1)
        if failed is not None:
            result.status, result.note = pip_failure(failed)
            return result
        print(f"compat: running the suite on torch {torch} (log: {pytest_log.relative_to(ROOT)})", flush=True)
        code, output, wall = run_suite(torch, tree, Path(tmp) / "junit.xml", pytest_log)
        return suite_result(result, code, output, wall, Path(tmp) / "junit.xml")


# ---------------------------------------------------------------- results and the page


def results_path(torch: str) -> Path:
    return COMPAT / f"results-{torch}.json"


def save(result: Result) -> None:
    results_path(result.torch).write_text(json.dumps(asdict(result), indent=2) + "\n")


def load(path: Path) -> Result:
    data = json.loads(path.read_text())
    data["failures"] = [Failure(**item) for item in data.get("failures", [])]
    return Result(**data)


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in re.split(r"[.+]", version))


def load_all() -> list[Result]:
    found = [load(path) for path in COMPAT.glob("results-*.json")]
    return sorted(found, key=lambda r: version_key(r.torch))


def cell(value: int | float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:.0f}{unit}" if isinstance(value, float) else str(value)


def code(text: str) -> str:
    """``text`` as one Markdown code span, whatever backticks it holds."""
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


def table(results: list[Result]) -> list[str]:
    lines = ["| torch | torchvision | commit | passed | failed | errors | skipped | wall time |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        commit = f"`{r.commit_short}`" if r.commit_short else "—"
        wall = "—" if r.wall_s is None else f"{r.wall_s / 60:.1f} min"
        lines.append(f"| {r.torch} | {r.torchvision} | {commit} | {cell(r.passed)} | {cell(r.failed)} "
                     f"| {cell(r.errors)} | {cell(r.skipped)} | {wall} |")
    return lines


def failing_everywhere(results: list[Result]) -> set[str]:
    """Tests that fail on every release measured (two or more): the commit's, not torch's."""
    ran = [{f.id for f in r.failures} for r in results if r.passed is not None]
    return set.intersection(*ran) if len(ran) > 1 else set()


def failure_line(failure: Failure, everywhere: bool) -> str:
    kind = " (error)" if failure.kind == "error" else ""
    where = " (fails on every release measured)" if everywhere else ""
    return f"- {code(failure.id)}{kind}{where}: {code(failure.message)}"


def details(results: list[Result]) -> list[str]:
    """Below the table: what failed on each release, and which releases were not measured."""
    lines: list[str] = []
    everywhere = failing_everywhere(results)
    for r in results:
        if r.failures:
            lines += ["", f"### torch {r.torch}: {len(r.failures)} failing "
                          f"(torchvision {r.torchvision}, commit `{r.commit_short}`, {r.measured_at})", ""]
            lines += [failure_line(f, f.id in everywhere) for f in r.failures]
    notes = [r for r in results if r.note]
    if notes:
        lines += ["", "### Not measured, or not to the end", ""]
        lines += [f"- torch {r.torch} (torchvision {r.torchvision}): **{r.status}**: {r.note}" for r in notes]
    return lines


def render(results: list[Result]) -> str:
    pythons = sorted({r.python for r in results}) or [platform.python_version()]
    intro = [
        "# Torch compatibility",
        "",
        "Which torch releases shapecheck's test suite passes on. `benchmarks/compat.py` exports a commit "
        "with `git archive` (committed into a scratch git repo, as the pre-commit tests need), installs it "
        "with `pip install -e '.[test]'` into one venv per torch release (`.compat/venv-<torch>`, torch and "
        "torchvision pinned on the same command line), and runs the whole suite there with "
        f"`python {' '.join(PYTEST_ARGS)}`, each release in turn, on a "
        f"{os.cpu_count()}-core CPU-only Linux machine with Python {', '.join(pythons)}. "
        "The CUDA builds of torch that PyPI serves are installed; no test uses a GPU.",
        "",
        "This page is written by the script from the results it measured (`.compat/results-<torch>.json`); "
        "do not edit it by hand. Rerun everything with `python benchmarks/compat.py`, or one release with "
        "`python benchmarks/compat.py --torch 2.6.0` (its row is replaced, the others kept; `--ref REV` "
        "tests another commit). A venv that already holds its torch is reused, and only the project is "
        "reinstalled.",
        "",
    ]
    return "\n".join([*intro, *table(results), *details(results)]) + "\n"


def write_page() -> None:
    PAGE.write_text(render(load_all()))
    print(f"compat: wrote {PAGE.relative_to(ROOT)}", flush=True)


# ---------------------------------------------------------------- main


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    COMPAT.mkdir(exist_ok=True)
    if args.page_only:
        write_page()
        return 0
    try:
        pairs = releases(args.torch)
        commit = git("rev-parse", "--verify", f"{args.ref}^{{commit}}")
    except ValueError as error:
        print(f"compat: {error}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError:
        print(f"compat: not a commit: {args.ref}", file=sys.stderr)
        return 2
    ok = True
    for torch, vision in pairs:
        result = measure(torch, vision, commit)
        save(result)
        write_page()
        print(f"compat: torch {torch}: {result.status} ({cell(result.passed)} passed, {cell(result.failed)} failed, "
              f"{cell(result.errors)} errors, {cell(result.skipped)} skipped)", flush=True)
        ok = ok and result.status == "passed"
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
