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
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shapecheck.errors import UsageError

MODEL_KEYS = {"target", "input", "output", "batch", "dtype", "mode", "max_params", "max_macs",
              "max_activation_memory", "select", "ignore"}
TOP_KEYS = {"models", "select", "ignore", "zero_config"}
INPUT_ATTRIBUTE, OUTPUT_ATTRIBUTE = "shapecheck_input", "shapecheck_output"


@dataclass(frozen=True)
class ModelConfig:
    target: str
    input: tuple[str, ...]
    output: str | None = None
    batch: int = 2
    dtype: str | None = None
    mode: str = "eval"
    max_params: str | int | None = None
    max_macs: str | int | None = None
    max_activation_memory: str | int | None = None
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()

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
    _unknown(table, TOP_KEYS, f"{where} [tool.shapecheck]")
    models = tuple(_model(entry, f"{where} [[tool.shapecheck.models]] #{i + 1}")
                   for i, entry in enumerate(table.get("models", [])))
    return Config(root, models, _codes(table.get("select", ())), _codes(table.get("ignore", ())),
                  bool(table.get("zero_config", True)))


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


def _model(entry: Any, where: str) -> ModelConfig:
    if not isinstance(entry, dict):
        raise UsageError(f"{where}: each model is a table with target and input")
    _unknown(entry, MODEL_KEYS, where)
    if "target" not in entry or "input" not in entry:
        raise UsageError(f"{where}: needs target = \"file.py:Name\" and input = \"3x64x64\"")
    inputs = entry["input"]
    return ModelConfig(
        target=str(entry["target"]),
        input=tuple(map(str, inputs)) if isinstance(inputs, list) else (str(inputs),),
        output=str(entry["output"]) if entry.get("output") is not None else None,
        batch=int(entry.get("batch", 2)), dtype=entry.get("dtype"), mode=str(entry.get("mode", "eval")),
        max_params=entry.get("max_params"), max_macs=entry.get("max_macs"),
        max_activation_memory=entry.get("max_activation_memory"),
        select=_codes(entry.get("select", ())), ignore=_codes(entry.get("ignore", ())),
    )


def _unknown(table: dict[str, Any], known: set[str], where: str) -> None:
    extra = sorted(set(table) - known)
    if extra:
        raise UsageError(f"{where}: unknown key {extra[0]!r}; known keys: {', '.join(sorted(known))}")


def _codes(value: str | Sequence[str]) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else list(value)
    return tuple(code.strip().upper() for item in items for code in str(item).split(",") if code.strip())


def select(config: Config, files: Sequence[str]) -> tuple[ModelConfig, ...]:
    """With no files, every configured model; with files (from the hook), the models defined
    in them or importing them, plus the zero-config classes they declare."""
    declared_here = [m for f in files for m in declared(f)] if config.zero_config else []
    if not files:
        return config.models
    changed = {Path(f).resolve() for f in files}
    names = {name for f in changed for name in _module_names(f, config.root)}
    chosen = [m for m in config.models
              if (path := _model_path(m, config.root)) is not None
              and (path in changed or _imports_any(path, names, changed))]
    known = {m.target for m in chosen}
    return tuple(chosen) + tuple(m for m in declared_here if m.target not in known)


def _model_path(model: ModelConfig, root: Path) -> Path | None:
    if model.file is not None:
        return (root / model.file).resolve()
    module = model.target.rpartition(":")[0]
    candidate = root / Path(*module.split("."))
    for path in (candidate.with_suffix(".py"), candidate / "__init__.py"):
        if path.is_file():
            return path.resolve()
    return None


def _module_names(path: Path, root: Path) -> set[str]:
    """``pkg.models.net``, ``models.net`` and ``net`` for root/pkg/models/net.py."""
    try:
        parts = path.with_suffix("").relative_to(root).parts
    except ValueError:
        parts = (path.stem,)
    return {".".join(parts[i:]) for i in range(len(parts))}


def _imports_any(model: Path, names: set[str], changed: set[Path]) -> bool:
    absolute, siblings = imports(model)
    return bool(absolute & names) or any(p.parent == model.parent and p.stem in siblings for p in changed)
