"""``[tool.shapecheck]`` in pyproject.toml, and models that declare their own input.

    [tool.shapecheck]
    ignore = ["SHP105"]

    [[tool.shapecheck.models]]
    target = "models/net.py:Net"
    input = "3x64x64"          # or a list, for several inputs
    output = "5"
    max_params = "1M"

Zero-config: a class attribute ``shapecheck_input = "3x32x32"`` (optionally
``shapecheck_output``) in an ``nn.Module`` subclass makes it a checked model. It is read
from the source with ast, so discovering models never imports them.
"""
from __future__ import annotations

import ast
import os
import subprocess
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shapecheck import settings
from shapecheck.errors import UsageError

INPUT_ATTRIBUTE, OUTPUT_ATTRIBUTE = "shapecheck_input", "shapecheck_output"


@dataclass(frozen=True)
class ModelConfig:
    target: str
    input: tuple[str, ...]
    output: str | None = None
    batch: int = 2
    batch_dim: int = 0
    dtype: str | None = None
    mode: str = "eval"
    max_params: str | int | None = None
    max_macs: str | int | None = None
    max_activation_memory: str | int | None = None
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    checkpoint: str | None = None  # a state_dict file, relative to the project root

    @property
    def file(self) -> str | None:
        where = self.target.rpartition(":")[0]
        return where if where.endswith(".py") else None


@dataclass(frozen=True)
class Config:
    root: Path
    models: tuple[ModelConfig, ...] = ()
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    zero_config: bool = True
    timeout: float | None = None  # seconds per model
    max_cpu_memory: str | int | None = None


def find(start: Path | None = None) -> Config:
    """The nearest pyproject.toml with a [tool.shapecheck] table, from ``start`` upward."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        path = folder / "pyproject.toml"
        if path.is_file():
            table = _read(path).get("tool", {}).get("shapecheck")
            if table is not None:
                return parse(table, folder, path)
    return Config(root=here)


def parse(table: dict[str, Any], root: Path, source: Path | None = None) -> Config:
    where = source or root / "pyproject.toml"
    settings.check(table, settings.PROJECT, f"{where} [tool.shapecheck]")
    models = tuple(_model(entry, f"{where} [[tool.shapecheck.models]] #{i + 1}")
                   for i, entry in enumerate(table.get("models", [])))
    return Config(root, models, _codes(table.get("select", ())), _codes(table.get("ignore", ())),
                  table.get("zero_config", True), table.get("timeout"), table.get("max_cpu_memory"))


def declared(path: str | os.PathLike) -> list[ModelConfig]:
    """Classes in ``path`` that carry ``shapecheck_input = "..."``, found without importing."""
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            values = _class_constants(node)
            if INPUT_ATTRIBUTE in values:
                inputs = values[INPUT_ATTRIBUTE]
                found.append(ModelConfig(
                    f"{path}:{node.name}", tuple(inputs) if isinstance(inputs, list | tuple) else (str(inputs),),
                    output=str(values[OUTPUT_ATTRIBUTE]) if OUTPUT_ATTRIBUTE in values else None))
    return found


def imports(path: str | os.PathLike) -> tuple[set[str], set[str]]:
    """What ``path`` imports: absolute module names with their parents (``a``, ``a.b``), and
    the sibling modules of its relative imports (``layers`` for ``from .layers import Block``)."""
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return set(), set()
    absolute: set[str] = set()
    siblings: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            absolute |= {prefix for alias in node.names for prefix in _prefixes(alias.name)}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            absolute |= set(_prefixes(node.module)) | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 1:
            siblings |= {node.module.split(".")[0]} if node.module else {alias.name for alias in node.names}
    return absolute, siblings


def _prefixes(name: str) -> Iterable[str]:
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        yield ".".join(parts[:i])


def _class_constants(node: ast.ClassDef) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for stmt in node.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else (
            [stmt.target] if isinstance(stmt, ast.AnnAssign) and stmt.value is not None else [])
        for target in targets:
            if isinstance(target, ast.Name) and target.id in (INPUT_ATTRIBUTE, OUTPUT_ATTRIBUTE):
                try:
                    values[target.id] = ast.literal_eval(stmt.value)  # type: ignore[arg-type]
                except ValueError:
                    continue
    return values


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 (byte {exc.start}: {exc.reason}); TOML files are UTF-8: "
                         "save it as UTF-8") from None


def _model(entry: Any, where: str) -> ModelConfig:
    if not isinstance(entry, dict):
        raise UsageError(f"{where}: each model is a table with target and input")
    settings.check(entry, settings.MODEL, where)
    if "target" not in entry or "input" not in entry:
        raise UsageError(f"{where}: needs target = \"file.py:Name\" and input = \"3x64x64\"")
    inputs = entry["input"]
    return ModelConfig(
        target=entry["target"],
        input=tuple(inputs) if isinstance(inputs, list) else (inputs,),
        output=str(entry["output"]) if entry.get("output") is not None else None,
        batch=entry.get("batch", 2), batch_dim=entry.get("batch_dim", 0), dtype=entry.get("dtype"), mode=entry.get("mode", "eval"),
        max_params=entry.get("max_params"), max_macs=entry.get("max_macs"),
        max_activation_memory=entry.get("max_activation_memory"),
        select=_codes(entry.get("select", ())), ignore=_codes(entry.get("ignore", ())),
        checkpoint=str(entry["checkpoint"]) if entry.get("checkpoint") is not None else None,
    )


def _codes(value: str | Sequence[str]) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else list(value)
    return tuple(code.strip().upper() for item in items for code in str(item).split(",") if code.strip())


def select(config: Config, files: Sequence[str]) -> tuple[ModelConfig, ...]:
    """With no files, every configured model and (with zero_config) every class in the project
    that declares shapecheck_input. With files (from the hook), those of them defined in a
    changed file or importing one, directly or through other project files: a broken helper
    in a sibling module re-checks every model that uses it."""
    declared_here = [replace(m, target=f"{_relative(f, config.root)}:{m.target.rpartition(':')[2]}")
                     for f in project_files(config.root) for m in declared(f)] if config.zero_config else []
    known = {m.target for m in config.models}
    candidates = [*config.models, *(m for m in declared_here if m.target not in known)]
    if not files:
        return tuple(candidates)
    changed = {Path(f).resolve() for f in files}
    return tuple(m for m in candidates if (path := _model_path(m, config.root)) is not None
                 and (path in changed or changed & imported_files(path, config.root)))


_SKIPPED = frozenset({".git", ".hg", ".venv", "venv", "env", "node_modules", "build", "dist", "site-packages",
                      "__pycache__", ".tox", ".nox", ".compat", ".eggs"})


def project_files(root: Path) -> list[Path]:
    """The project's Python files that mention shapecheck_input: git's tracked files when the
    root is a repository, else a walk that skips virtual environments and build folders."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--", "*.py"], cwd=root, capture_output=True,
                                check=True).stdout.decode().split("\0")
        paths = [root / name for name in listed if name]
    except (OSError, subprocess.CalledProcessError):
        paths = _walk(root)
    return [p for p in paths if p.is_file() and INPUT_ATTRIBUTE.encode() in p.read_bytes()]


def _walk(root: Path) -> list[Path]:
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIPPED and not d.startswith(".")]
        found += [Path(folder) / name for name in names if name.endswith(".py")]
    return found


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def imported_files(path: Path, root: Path) -> set[Path]:
    """The project files that ``path`` imports, directly or through other project files."""
    seen: set[Path] = set()
    todo = [path]
    while todo:
        current = todo.pop()
        absolute, siblings = imports(current)
        found = {f for name in absolute for base in (root, current.parent) for f in _module_files(base, name)}
        found |= {f for name in siblings for f in _module_files(current.parent, name)}
        for file in found - seen - {path}:
            seen.add(file)
            todo.append(file)
    return seen


def _module_files(base: Path, name: str) -> list[Path]:
    candidate = base / Path(*name.split("."))
    return [p.resolve() for p in (candidate.with_suffix(".py"), candidate / "__init__.py") if p.is_file()]


def _model_path(model: ModelConfig, root: Path) -> Path | None:
    if model.file is not None:
        return (root / model.file).resolve()
    module = model.target.rpartition(":")[0]
    candidate = root / Path(*module.split("."))
    for path in (candidate.with_suffix(".py"), candidate / "__init__.py"):
        if path.is_file():
            return path.resolve()
    return None


