"""A model's state, taken to prove that an analysis left it as it was (tests, benchmarks).

``fingerprint(model)`` records, under a readable key each:

- every module (under every name that reaches it): its class, its ``__dict__`` keys, the
  object each attribute holds, and the items of each list, dict and set attribute (the
  parameter, buffer and child tables, the hook dictionaries, the user's own containers);
- every parameter and buffer under every name, and every plain tensor attribute: the
  object, its device, dtype, shape, ``requires_grad``, a hash of its values, and its
  ``grad`` (the object and a hash of its values);
- every ``training`` flag, and the number of hooks in each hook dictionary.

``changes(before, after)`` lists what differs, one line a key. It reads every value of every
tensor: for tests and benchmarks, never the hot path.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True, eq=False)
class Same:
    """An object compared by identity: the same object, not an equal one."""

    value: Any

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Same) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)

    def __repr__(self) -> str:
        return f"<{type(self.value).__name__} at {id(self.value):#x}>"


Fingerprint = dict[str, Any]

_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
          "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs",
          "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
          "_load_state_dict_post_hooks")


def fingerprint(model: nn.Module) -> Fingerprint:
    found: Fingerprint = {}
    for name, module in model.named_modules(remove_duplicate=False):
        where = name or "(model)"
        found[f"{where}: class"] = Same(type(module))
        found[f"{where}: attributes"] = tuple(vars(module))
        found[f"{where}: training"] = module.training
        found[f"{where}: hooks"] = tuple(len(getattr(module, h, ())) for h in _HOOKS)
        for key, value in vars(module).items():
            found[f"{where}.{key}"] = Same(value)
            if isinstance(value, dict):
                found[f"{where}.{key} items"] = tuple((k, Same(v)) for k, v in value.items())
            elif isinstance(value, list | set):
                found[f"{where}.{key} items"] = tuple(Same(v) for v in value)
            if isinstance(value, torch.Tensor) and key not in module._parameters and key not in module._buffers:
                found.update(_tensor(f"{where}.{key}", value))
        for kind in (module._parameters, module._buffers):
            for key, tensor in kind.items():
                if tensor is not None:
                    found.update(_tensor(f"{name}.{key}" if name else key, tensor))
    return found


def changes(before: Fingerprint, after: Fingerprint) -> list[str]:
    """One line per key whose value differs, or that only one side has."""
    lines = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key, "(absent)"), after.get(key, "(absent)")
        if old != new:
            lines.append(f"{key}: {old!r} -> {new!r}")
    return lines


def _tensor(name: str, t: torch.Tensor) -> Fingerprint:
    grad = t.grad if t.is_leaf else None
    lazy = isinstance(t, nn.parameter.UninitializedTensorMixin)
    return {
        f"{name}": Same(t),
        f"{name} device": t.device,
        f"{name} dtype": t.dtype,
        f"{name} shape": "uninitialised" if lazy else tuple(t.shape),
        f"{name} requires_grad": t.requires_grad,
        f"{name} values": digest(t),
        f"{name} grad": Same(grad),
        f"{name} grad values": digest(grad) if grad is not None else None,
    }


def digest(t: torch.Tensor) -> str | None:
    """A hash of the tensor's bytes; None for a tensor with no values (meta, uninitialised)."""
    if t.is_meta or isinstance(t, nn.parameter.UninitializedTensorMixin):
        return None
    data = t.detach().reshape(-1).cpu().contiguous()
    if data.dtype.is_complex:
        data = torch.view_as_real(data).reshape(-1)
    return hashlib.blake2b(data.view(torch.uint8).numpy(), digest_size=16).hexdigest()  # no copy of the bytes
