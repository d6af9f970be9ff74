"""Ground truth: what a real forward pass produces, recorded with forward hooks.

Independent of the tracer: the zoo's training cross-check and the test suite both compare
a Report against it, call by call.
"""
from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn

from shapecheck.report import Report


def _shapes(out: object) -> tuple[tuple[int, ...], ...]:
    if isinstance(out, torch.Tensor):
        return (tuple(out.shape),)
    if isinstance(out, list | tuple):
        return tuple(s for item in out for s in _shapes(item))
    if isinstance(out, dict):
        return tuple(s for item in out.values() for s in _shapes(item))
    return ()


def real_module_shapes(model: nn.Module, *inputs: torch.Tensor) -> dict[str, list[tuple]]:
    """Module name -> output shapes of each of its calls, in call order (eval, no_grad).

    The model's own mode is restored afterwards.
    """
    names = {}
    for name, module in model.named_modules(remove_duplicate=False):
        names.setdefault(id(module), name)
    seen: dict[str, list[tuple]] = defaultdict(list)
    handles = [
        m.register_forward_hook(lambda mod, args, out: seen[names[id(mod)]].append(_shapes(out)))
        for m in {id(m): m for m in model.modules()}.values()
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return dict(seen)


def traced_module_shapes(report: Report) -> dict[str, list[tuple]]:
    """The same mapping, as the Report predicts it."""
    seen: dict[str, list[tuple]] = defaultdict(list)
    for layer in report.layers:
        if layer.kind == "module":
            seen[layer.name if layer.depth else ""].append(layer.output_shapes)
    return dict(seen)


def unique_params(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
