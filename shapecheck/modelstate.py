"""The model walk and its state during a trace: modules in order, parameter counts, the mode
set for a trace and everything put back after it, and the stand-in weights and inputs.

Every function here reads the user's model; ``in_mode`` is the only one that writes to it,
and it puts back exactly what it found (shapecheck.preserve).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.parameter import UninitializedTensorMixin

from shapecheck import lazy
from shapecheck.preserve import preserved
from shapecheck.spec import InputSpec

Mode = Literal["eval", "train", "same"]


Tree = list[tuple[str, nn.Module]]


def module_tree(model: nn.Module) -> Tree:
    """``list(model.named_modules(remove_duplicate=False))``, without its nested generators:
    those hand every module up through one generator per level, a cost that grows with depth."""
    tree: Tree = []
    stack = [("", model)]
    while stack:
        prefix, module = stack.pop()
        tree.append((prefix, module))
        stack.extend(reversed([(f"{prefix}.{key}" if prefix else key, child)
                               for key, child in module._modules.items() if child is not None]))
    return tree


@dataclass(frozen=True)
class Walk:
    """One walk over a model's modules, for everything an analysis asks of them."""

    tree: Tree
    params: dict[int, int]  # param_counts


def walk(model: nn.Module) -> Walk:
    tree = module_tree(model)
    return Walk(tree, param_counts(model, tree))


def param_counts(model: nn.Module, tree: Tree | None = None) -> dict[int, int]:
    """``sum(p.numel() for p in m.parameters())`` for every module ``m``, in one pass.

    Asking each module in turn walks every subtree again, which cost more than the trace
    itself on deep models. A parameter or module shared between places makes a subtree's sum
    differ from its children's, so then each module is asked after all. ``tree`` is
    ``module_tree(model)``, when already at hand.
    """
    tree = module_tree(model) if tree is None else tree
    slots = [p for _, m in tree for p in m._parameters.values() if p is not None]
    if len({id(p) for p in slots}) != len(slots):
        return {id(m): sum(lazy.numel(p) for p in m.parameters()) for m in model.modules()}
    counts: dict[int, int] = {}

    def count(module: nn.Module) -> int:
        if id(module) not in counts:
            own = sum(lazy.numel(p) for p in module._parameters.values() if p is not None)
            counts[id(module)] = own + sum(count(child) for child in module._modules.values()
                                           if child is not None)
        return counts[id(module)]

    count(model)
    return counts


@contextmanager
def in_mode(model: nn.Module, mode: Mode, tree: Tree | None = None, preserve: bool = True) -> Iterator[None]:
    """Put the model in ``mode`` for the block, and put everything back after it
    (``preserve.preserved``): the flags, and whatever the forward changed in the modules.
    ``preserve=False`` keeps it all: for shapecheck's own copies only.

    The flags are written straight into each module's ``__dict__``, as ``nn.Module.train``
    and ``__setattr__`` would leave them, unless a class overrides ``train``: on the
    80 torchvision models, those two methods cost as much as rendering the reports.
    """
    tree = module_tree(model) if tree is None else tree
    modules = list({id(m): m for _, m in tree}.values())
    with preserved(model, modules) if preserve else nullcontext():
        plain = all(type(m).train is nn.Module.train and "training" in vars(m) for m in modules)
        flags = [m.training for m in modules]
        if mode != "same" and plain:
            for m in modules:
                vars(m)["training"] = mode == "train"
        elif mode != "same":
            model.train(mode == "train")
        try:
            yield
        finally:
            if plain:  # the flags first, so that the snapshot's check finds nothing to put back
                for m, training in zip(modules, flags):
                    vars(m)["training"] = training


def stand_ins(model: nn.Module, device: str,
              tree: Tree | None = None) -> dict[str, torch.Tensor]:
    """Tensors that take the place of the model's parameters and buffers in ``functional_call``.

    Every name is listed, and a tied weight's names share one stand-in, so the call needs no
    ``tie_weights`` pass (torch's is quadratic in the number of tensors). A meta parameter
    stands in for itself in a meta trace: it has nothing to protect, and the trace's ops
    never write a parameter (a shared model built on meta needs no swap at all). ``tree`` is
    ``module_tree(model)``, when already at hand.
    """
    tree = module_tree(model) if tree is None else tree
    weights: dict[str, torch.Tensor] = {}
    made: dict[int, torch.Tensor] = {}
    for kind, share in (("_parameters", True), ("_buffers", False)):
        for prefix, module in tree:
            for key, tensor in getattr(module, kind).items():
                if tensor is None or isinstance(tensor, UninitializedTensorMixin):
                    continue  # a lazy module's: it materialises itself, on meta, as the trace reaches it
                if id(tensor) not in made:
                    own = share and device == "meta" and tensor.is_meta
                    made[id(tensor)] = tensor if own else _stand_in(tensor, device)
                weights[f"{prefix}.{key}" if prefix else key] = made[id(tensor)]
    return weights


def call_with(model: nn.Module, weights: dict[str, torch.Tensor], tree: Tree,
              args: tuple, kwargs: dict[str, Any]) -> Any:
    """``model(*args, **kwargs)`` with ``weights`` in place of its own, swapped under one
    name per slot: ``functional_call`` restores a slot reached under two names (a module
    registered twice) with the first name's stand-in still in it. The model itself is
    skipped where a weight stands in for itself."""
    slots: set[tuple[int, str]] = set()
    swapped: dict[str, torch.Tensor] = {}
    for prefix, module in tree:
        for table in (module._parameters, module._buffers):
            for key, tensor in table.items():
                name = f"{prefix}.{key}" if prefix else key
                if (id(module), key) in slots or weights.get(name, tensor) is tensor:
                    continue
                slots.add((id(module), key))
                swapped[name] = weights[name]
    return functional_call(model, swapped, args, kwargs, strict=False, tie_weights=False)


def _stand_in(t: torch.Tensor, device: str) -> torch.Tensor:
    if device == "meta":
        return torch.empty(t.shape, dtype=t.dtype, device="meta")
    if t.device.type == "meta":
        if t.is_floating_point():  # a private generator: the caller's random stream stays where it was
            return torch.randn(t.shape, dtype=t.dtype, generator=torch.Generator().manual_seed(0))
        return torch.zeros(t.shape, dtype=t.dtype)
    # Real values, copied: a forward in train mode updates BatchNorm statistics in place, and
    # one may write a weight in place (a weight standardisation under no_grad); the
    # user's tensors must keep theirs.
    real = t.detach().to("cpu")
    return real.clone() if real.data_ptr() == t.data_ptr() else real


def make_input(spec: InputSpec, batch: int, device: str) -> Any:
    """The argument ``spec`` describes: a tensor, or a list, tuple or dict of them."""
    if spec.container == "dict":
        return {item.name: make_input(item, batch, device) for item in spec.items}
    if spec.container != "tensor":
        items = [make_input(item, batch, device) for item in spec.items]
        return items if spec.container == "list" else tuple(items)
    shape = spec.batched(batch)
    if device == "meta":
        return torch.empty(shape, dtype=spec.dtype, device="meta")
    if spec.dtype.is_floating_point:
        return torch.randn(shape, dtype=spec.dtype, generator=torch.Generator().manual_seed(0))
    return torch.zeros(shape, dtype=spec.dtype)


def make_arguments(inputs: Sequence[InputSpec], batch: int, device: str) -> tuple[tuple, dict[str, Any]]:
    """``forward``'s positional and keyword arguments."""
    return (tuple(make_input(spec, batch, device) for spec in inputs if spec.name is None),
            {spec.name: make_input(spec, batch, device) for spec in inputs if spec.name is not None})
