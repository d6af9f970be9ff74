"""Shape snapshots: what a model's layers look like, stored as JSON, and a readable drift.

Source lines are left out on purpose: moving code must not break a snapshot, changing a
shape must.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from shapecheck.render.numbers import count, shapes
from shapecheck.report import Layer, Report

VERSION = 1
_ATTRS = ("in_features", "out_features", "in_channels", "out_channels", "num_features", "kernel_size",
          "stride", "padding", "dilation", "groups", "output_size", "num_embeddings", "embedding_dim")


def data(report: Report) -> dict[str, Any]:
    seen: Counter[str] = Counter()
    layers = []
    for layer in report.layers:
        if layer.depth == 0:
            continue  # the model itself: its changes are the totals
        seen[layer.name] += 1
        key = layer.name if seen[layer.name] == 1 else f"{layer.name}#{seen[layer.name]}"
        layers.append({"key": key, "type": layer.type, "output": [list(s) for s in layer.output_shapes],
                       "params": layer.params, "macs": layer.macs, "attrs": _attrs(layer)})
    snapshot = {"version": VERSION, "model": report.model, "input": report.input_text, "batch": report.batch,
                "layers": layers, "totals": {"params": report.totals.params, "macs": report.totals.macs}}
    if report.batch_text and report.batch_text != f"batch {report.batch}":  # sequence-first inputs
        snapshot["batch"] = report.batch_text.removeprefix("batch ")
    if report.output_names:  # a model that returns dicts: its keys are part of its shapes
        snapshot["outputs"] = {name: list(shape) for name, shape in zip(report.output_names, report.outputs)}
    return snapshot


def drift(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """One line per difference, e.g. ``fc1 in_features 2880 -> 3380, params +24,000``."""
    lines = [f"{key} {old[key]} -> {new[key]}" for key in ("input", "batch") if old.get(key) != new.get(key)]
    if old.get("outputs", {}) != new.get("outputs", {}):
        lines.append(f"outputs {old.get('outputs', {})} -> {new.get('outputs', {})}")
    before = {layer["key"]: layer for layer in old.get("layers", [])}
    after = {layer["key"]: layer for layer in new.get("layers", [])}
    for key, layer in after.items():
        if key not in before:
            lines.append(f"+ {key} ({layer['type']}) {shapes(layer['output']) or '--'}, {layer['params']:,} params")
        else:
            changes = _changes(before[key], layer)
            if changes:
                lines.append(f"{key} " + ", ".join(changes))
    lines += [f"- {key} ({layer['type']})" for key, layer in before.items() if key not in after]
    lines += _totals(old.get("totals", {}), new.get("totals", {}))
    return lines


def _changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    changes = [f"{name} {old['attrs'].get(name)} -> {new['attrs'].get(name)}"
               for name in sorted(old["attrs"].keys() | new["attrs"].keys())
               if old["attrs"].get(name) != new["attrs"].get(name)]
    if old["type"] != new["type"]:
        changes.insert(0, f"type {old['type']} -> {new['type']}")
    if old["output"] != new["output"]:
        changes.append(f"output {shapes(old['output']) or '--'} -> {shapes(new['output']) or '--'}")
    if old["params"] != new["params"]:
        changes.append(f"params {new['params'] - old['params']:+,}")
    if old["macs"] != new["macs"] and not changes:
        changes.append(f"MACs {count(old['macs'])} -> {count(new['macs'])}")
    return changes


def _totals(old: dict[str, int], new: dict[str, int]) -> list[str]:
    lines = []
    if old.get("params") != new.get("params"):
        lines.append(f"total params {old.get('params', 0):,} -> {new.get('params', 0):,} "
                     f"({new.get('params', 0) - old.get('params', 0):+,})")
    if old.get("macs") != new.get("macs"):
        lines.append(f"total MACs {count(old.get('macs', 0))} -> {count(new.get('macs', 0))}")
    return lines


def _attrs(layer: Layer) -> dict[str, Any]:
    return {name: list(v) if isinstance(v, tuple) else v for name in _ATTRS
            if (v := layer.attr(name)) is not None}
