"""Rows as the recorder fills them, and their freezing into the report's Layer records,
with the source lookups that locate each layer and the author's own arguments for --fix."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import torch
from torch import nn

from shapecheck import sources
from shapecheck.report import Layer, Location, Shape


@dataclass
class Row:
    name: str
    type: str
    kind: Literal["module", "function"]
    depth: int
    parent: str
    input_shapes: tuple[Shape, ...]
    input_sources: tuple[int | None, ...]
    called_at: Location | None
    module: nn.Module | None = None
    args: str = ""
    attrs: tuple[tuple[str, Any], ...] = ()
    params: int = 0
    flops: int = 0
    output_shapes: tuple[Shape, ...] = ()
    output_bytes: int = 0
    is_leaf: bool = True
    failed: bool = False
    input_weights: tuple[str | None, ...] = ()


def freeze(index: int, row: Row, root: nn.Module, modules: dict[str, nn.Module],
            origin: Location | None) -> Layer:
    defined_at, written, made_by = None, (), None
    if row.kind == "module":
        defined_at, site = sources.module_definition(root, row.name if row.depth else "", modules, origin)
        if site is not None and row.module is not None:
            written, made_by = named_init_args(type(row.module), site), site.made_by
    return Layer(
        index=index, name=row.name, type=row.type, kind=row.kind, depth=row.depth,
        parent=row.parent, input_shapes=row.input_shapes, output_shapes=row.output_shapes,
        input_sources=row.input_sources, input_weights=row.input_weights, params=row.params, macs=row.flops // 2,
        output_bytes=row.output_bytes, is_leaf=row.is_leaf, failed=row.failed, args=row.args,
        attrs=row.attrs, defined_at=defined_at, called_at=row.called_at, written=written, made_by=made_by,
    )


@lru_cache(maxsize=4096)
def named_init_args(cls: type, site: sources.Assignment) -> tuple[tuple[str, sources.Argument], ...]:
    """The author's own arguments by parameter name: ``("in_features", Argument("20 * 12 * 12", ...))``.

    One tuple per (class, assignment), shared by every row of it: a zoo's rows repeat a few.
    """
    params = _init_parameters(cls)
    if params is None:
        return ()
    named = dict(zip(params, site.args))
    named.update(site.keywords)
    return tuple(named.items())


@lru_cache(maxsize=1024)
def _init_parameters(cls: type) -> tuple[str, ...] | None:
    try:
        return tuple(p for p in inspect.signature(cls.__init__).parameters if p != "self")
    except (TypeError, ValueError):
        return None


def output_names(out: Any) -> tuple[str, ...]:
    """The path of each output tensor, in ``_tensors`` order, when the output holds a dict
    (``boxes``, ``0.scores``); empty for tensors, tuples and lists, whose order is their name."""
    named: list[str] = []

    def visit(value: Any, path: str, depth: int) -> None:
        if isinstance(value, torch.Tensor):
            named.append(path)
        elif depth <= 3 and isinstance(value, dict):
            for key, item in value.items():
                visit(item, f"{path}.{key}" if path else str(key), depth + 1)
        elif depth <= 3 and isinstance(value, list | tuple):
            for i, item in enumerate(value):
                visit(item, f"{path}.{i}" if path else str(i), depth + 1)

    visit(out, "", 0)
    has_dict = isinstance(out, dict) or any(isinstance(v, dict) for v in (out if isinstance(out, list | tuple) else ()))
    return tuple(named) if has_dict else ()


def touched_names(weights: dict[str, torch.Tensor], ids: set[int]) -> frozenset[str]:
    """The names of the weights the forward handed to an op, a tied weight under its first name only."""
    named: dict[int, str] = {}
    for name, t in weights.items():
        named.setdefault(id(t), name)
    return frozenset(name for key, name in named.items() if key in ids)
