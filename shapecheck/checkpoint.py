"""Read a checkpoint's tensor shapes safely, to reconcile them with a model (``--checkpoint``)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from shapecheck.errors import UsageError
from shapecheck.report import Shape

# Where training scripts commonly nest the weights inside a saved dict.
_NESTED = ("state_dict", "model_state_dict", "model", "net", "weights")


def shapes(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, Shape]:
    """Every tensor's shape by key; ``module.`` prefixes from DataParallel are removed."""
    state = _load(source) if isinstance(source, str | os.PathLike) else source
    state = _unwrap(state)
    found = {key: tuple(value.shape) for key, value in state.items() if isinstance(value, torch.Tensor)}
    if found and all(key.startswith("module.") for key in found):
        found = {key.removeprefix("module."): shape for key, shape in found.items()}
    return found


def _load(path: str | os.PathLike) -> Mapping[str, Any]:
    if not os.path.isfile(path):
        raise UsageError(f"no such checkpoint: {path}; give the file saved with torch.save(model.state_dict(), ...)")
    try:
        # weights_only refuses pickled code; meta tensors keep the shapes and read no data.
        return torch.load(path, map_location="meta", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot load checkpoint {path} with weights_only=True: {first}") from None


def _unwrap(state: Any) -> Mapping[str, Any]:
    if not isinstance(state, Mapping):
        raise UsageError(f"the checkpoint holds a {type(state).__name__}, not a state_dict")
    if any(isinstance(v, torch.Tensor) for v in state.values()):
        return state
    for key in _NESTED:
        if isinstance(state.get(key), Mapping):
            return _unwrap(state[key])
    raise UsageError(f"the checkpoint has no tensors; its keys are {', '.join(map(str, list(state)[:8]))}")
