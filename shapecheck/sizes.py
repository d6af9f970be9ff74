"""Which input sizes a model accepts: one bare forward on the meta device per candidate size.

This is a sweep, not symbolic algebra: every answer was checked by running the model at
that size. It costs a millisecond or so per size for course-sized models, because no
rows, FLOPs or sources are recorded; a global forward pre-hook reads what the rules need
(the pixels each window drops) and is removed afterwards. Questions about one Linear's
input width use the full trace instead, which recovers from failures.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from shapecheck import arithmetic, patches
from shapecheck.spec import InputSpec
from shapecheck.modelstate import Mode, in_mode, make_input, stand_ins
from shapecheck.naming import module_attrs
from shapecheck.trace import NeedsValues, raise_if_needs_values, trace


@dataclass(frozen=True)
class Drop:
    """A layer whose windows leave input pixels unread at this size."""

    layer: str
    size: tuple[int, ...]
    out: tuple[int, ...]
    pixels: tuple[int, ...]


@dataclass(frozen=True)
class Probe:
    size: int
    ok: bool
    error: str | None = None
    drops: tuple[Drop, ...] = ()


@dataclass(frozen=True)
class Sizes:
    """The answer of a sweep: every size in [low, high] that runs, and the ones that lose pixels."""

    template: str
    low: int
    high: int
    accepted: tuple[int, ...]
    lossy: dict[int, tuple[Drop, ...]]
    device: str

    @property
    def minimum(self) -> int | None:
        return self.accepted[0] if self.accepted else None

    def template_at(self, size: int) -> str:
        return "x".join(str(size) if part.isalpha() else part for part in self.template.split("x"))

    @property
    def open_ended(self) -> bool:
        """Every size from the minimum to the top of the range runs."""
        return bool(self.accepted) and self.accepted == tuple(range(self.accepted[0], self.high + 1))


class Solver:
    """Probe one model at many sizes. The free dimensions of ``template`` (None) take each size."""

    def __init__(self, model: nn.Module, inputs: Sequence[InputSpec], template: tuple[int | None, ...] | None = None,
                 mode: Mode = "eval", label: str | None = None) -> None:
        self.model, self.inputs, self.mode, self.label = model, tuple(inputs), mode, label
        first = self.inputs[0].shape
        self.template = template or (first[0], *(None for _ in first[1:]))
        self.device = "meta"
        self._weights: dict[str, torch.Tensor] | None = None
        self._cache: dict[int, Probe] = {}
        self._traced: dict[int, dict[str, int]] = {}
        self._module_names: dict[int, str] | None = None

    def shape(self, size: int) -> tuple[int, ...]:
        return tuple(size if d is None else d for d in self.template)

    def probe(self, size: int) -> Probe:
        if size not in self._cache:
            self._cache[size] = self._run(size)
        return self._cache[size]

    def sweep(self, low: int, high: int) -> Sizes:
        probes = [self.probe(size) for size in range(low, high + 1)]
        accepted = tuple(p.size for p in probes if p.ok)
        lossy = {p.size: p.drops for p in probes if p.ok and p.drops}
        return Sizes(self.template_text, low, high, accepted, lossy, self.device)

    def fits(self, linear: str, features: int, start: int) -> tuple[int, ...]:
        """Sizes near ``start`` at which ``linear`` receives ``features`` per sample.

        These probes use the full trace, which recovers from failures, so a hard-coded
        ``view`` before the Linear does not hide the features that would reach it.
        """
        found: set[int] = set()
        for step in (-1, 1):
            size = start
            while 1 <= size <= 2 * start:
                got = self._features(size).get(linear)
                if got == features:
                    found.add(size)
                elif got is not None and (got - features) * step > 0:
                    break  # features grow with the size: past the target, nothing more fits
                size += step
        return tuple(sorted(found))

    def _features(self, size: int) -> dict[str, int]:
        if size not in self._traced:
            spec = InputSpec(self.shape(size), self.inputs[0].dtype, self.inputs[0].name)
            layers = trace(self.model, (spec, *self.inputs[1:]), 1, self.mode).layers
            self._traced[size] = {
                layer.name: layer.input_shapes[0][-1] for layer in reversed(layers)
                if layer.attr("in_features") is not None and layer.input_shapes
                and len(layer.input_shapes[0]) > 1 and layer.input_shapes[0][0] == 1}
        return self._traced[size]

    def width_varies(self, linear: str, start: int) -> bool:
        """Whether the features ``linear`` receives change with the input size at all."""
        widths = {self._features(size).get(linear) for size in (start, 2 * start)}
        return len(widths - {None}) > 1

    def nearest(self, start: int, reach: int = 64) -> tuple[int | None, int | None]:
        """The closest sizes below and above ``start`` at which the forward runs."""
        below = next((s for s in range(start - 1, max(start - reach, 0), -1) if self.probe(s).ok), None)
        above = next((s for s in range(start + 1, start + reach + 1) if self.probe(s).ok), None)
        return below, above

    def smallest(self, start: int, limit: int = 1024) -> int | None:
        """The smallest size above ``start`` at which the forward runs."""
        return next((s for s in range(start + 1, max(limit, start) + 1) if self.probe(s).ok), None)

    def _names(self) -> dict[int, str]:
        # Built on the first probe: most analyses never probe.
        if self._module_names is None:
            self._module_names = {id(m): n for n, m in self.model.named_modules()}
        return self._module_names

    @property
    def template_text(self) -> str:
        if self.label:
            return self.label
        letters = iter("HWD") if sum(d is None for d in self.template) > 1 else iter("L")
        return "x".join(str(d) if d is not None else next(letters, "N") for d in self.template)

    # -- one forward ----------------------------------------------------------------------
    def _run(self, size: int) -> Probe:
        try:
            return self._forward(size)
        except NeedsValues:
            self.device, self._weights, self._cache = "cpu", None, {}
            return self._forward(size)

    def _forward(self, size: int) -> Probe:
        if self._weights is None:
            self._weights = stand_ins(self.model, self.device)
        first = InputSpec(self.shape(size), self.inputs[0].dtype)
        specs = (replace(first, name=self.inputs[0].name), *self.inputs[1:])
        xs = tuple(make_input(spec, 1, self.device) for spec in specs if spec.name is None)
        named = {spec.name: make_input(spec, 1, self.device) for spec in specs if spec.name is not None}
        drops: list[Drop] = []
        try:
            with self._recording(drops), in_mode(self.model, self.mode), torch.no_grad(), \
                    torch.device(self.device):
                out = functional_call(self.model, self._weights, xs, named, strict=False, tie_weights=False)
        except Exception as exc:  # any failure means "this size does not run"
            if self.device == "meta":
                raise_if_needs_values(exc)
            return Probe(size, False, f"{type(exc).__name__}: {str(exc).strip()[:200]}", tuple(drops))
        rows = _leading(out)
        if rows not in (None, 1):  # runs, but the batch is folded: not an accepted size
            return Probe(size, False, f"one sample came out as {rows} rows", tuple(drops))
        return Probe(size, True, None, tuple(drops))

    @contextmanager
    def _recording(self, drops: list[Drop]) -> Iterator[None]:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            name = self._names().get(id(module))
            x = args[0] if args and isinstance(args[0], torch.Tensor) else None
            if name is None or x is None:
                return
            drop = _drop(name, module, tuple(x.shape))
            if drop is not None:
                drops.append(drop)

        with patches.module_pre_hook(hook):  # this context's module calls only
            yield


def _leading(out: Any) -> int | None:
    """The leading size of the first output tensor, batch-sized in a model that keeps the batch."""
    while isinstance(out, list | tuple | dict) and out:
        out = next(iter(out.values())) if isinstance(out, dict) else out[0]
    return out.shape[0] if isinstance(out, torch.Tensor) and out.dim() else None


def _drop(name: str, module: nn.Module, shape: tuple[int, ...]) -> Drop | None:
    kind = type(module).__name__
    rank = arithmetic.spatial_rank(kind, shape)
    found = arithmetic.windows_from(kind, dict(module_attrs(module)), rank)
    if found is None or len(shape) < len(found):
        return None
    spatial = shape[-len(found):]
    if any(w.out(n) < 1 for w, n in zip(found, spatial)) and not found[0].transposed:
        # A window larger than its map: the real kernels raise, the meta ones of torch 2.6
        # and older return an empty map, and a later adaptive pool would hide it.
        raise RuntimeError(f"{name}: {kind} needs a larger input than {'x'.join(map(str, spatial))}")
    pixels = tuple(w.dropped(n) for w, n in zip(found, spatial))
    if not any(pixels):
        return None
    return Drop(name, spatial, tuple(w.out(n) for w, n in zip(found, spatial)), pixels)


def parse_template(text: str) -> tuple[tuple[int | None, ...], str]:
    """``3xHxW`` -> ((3, None, None), dtype text); letters mark the dimensions to sweep."""
    dims, _, dtype = text.strip().partition(":")
    parts = dims.lower().replace(",", "x").split("x")
    return tuple(None if p.isalpha() else int(p) for p in parts), dtype


def ranges(sizes: Iterable[int]) -> str:
    """``60-63, 66`` for the sizes 60, 61, 62, 63, 66."""
    out: list[str] = []
    run: list[int] = []
    for size in sorted(sizes):
        if run and size != run[-1] + 1:
            out.append(_run_text(run))
            run = []
        run.append(size)
    if run:
        out.append(_run_text(run))
    return ", ".join(out)


def _run_text(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"
