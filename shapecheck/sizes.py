"""Which input sizes a model accepts.

The answer comes from the size algebra (``shapecheck.algebra``): one trace, replayed on
every candidate size at once. ``solve`` then checks it with bare meta forwards at the
accepted set's edges, on both sides, and at a sample inside, and says so. A model the
algebra does not cover, or an answer a forward contradicts, falls back to the sweep: one
bare forward on the meta device per size, with a global forward pre-hook reading the pixels
each window drops. The rules' questions (which sizes a Linear's width fits, the nearest
size that runs) read the algebra of the analysis' own trace, at no extra trace.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from shapecheck import arithmetic, functional, lazy, patches, sources
from shapecheck.errors import UsageError
from shapecheck.spec import InputSpec
from shapecheck.modelstate import Mode, call_with, in_mode, make_arguments, module_tree, stand_ins
from shapecheck.naming import module_attrs, op_names
from shapecheck.preserve import preserved
from shapecheck.interception import FastMetaMode
from shapecheck.algebra import Evaluation, Unmodelled, evaluate
from shapecheck.trace import NeedsValues, TraceResult, raise_if_needs_values, trace


MAX_SIZES = 1_000_000  # sizes in one solve: measured at about 125 bytes each, so 125 MB


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
    """Every size in [low, high] that runs, and the ones that lose pixels; ``method`` says how
    it was found, and ``verified`` the sizes a real forward confirmed."""

    template: str
    low: int
    high: int
    accepted: tuple[int, ...]
    lossy: dict[int, tuple[Drop, ...]]
    device: str
    method: str = "sweep"
    verified: tuple[int, ...] = ()
    why_sweep: str | None = None  # what the algebra could not follow

    @property
    def period(self) -> tuple[int, int] | None:
        """(start, step) when the accepted sizes are every step-th size from start to the top."""
        got = self.accepted
        if len(got) < 3 or got[1] - got[0] < 2:
            return None
        step = got[1] - got[0]
        return (got[0], step) if got == tuple(range(got[0], self.high + 1, step)) else None

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
                 mode: Mode = "eval", label: str | None = None, traced: TraceResult | None = None,
                 batch: int = 1) -> None:
        """``traced`` is a trace of ``inputs`` at ``batch`` already at hand (the analysis'):
        the algebra reads it instead of tracing again."""
        self.model, self.inputs, self.mode, self.label = model, tuple(inputs), mode, label
        first = self.inputs[0].shape
        self.template = template or (first[0], *(None for _ in first[1:]))
        self.device = "meta"
        self._weights: dict[str, torch.Tensor] | None = None
        self._cache: dict[int, Probe] = {}
        self._traced: dict[int, dict[str, int]] = {}
        self._module_names: dict[int, str] | None = None
        self._windows: dict[tuple[int, int], tuple[arithmetic.Window, ...] | None] = {}
        self._twin: nn.Module | None = None  # the model with meta weights, for meta forwards
        self._given = (traced, batch) if traced is not None else None
        self._algebra: tuple[TraceResult, int, int] | None = None  # the trace, its batch and size
        self._evaluations: dict[tuple[int, int], Evaluation] = {}
        self.unmodelled: str | None = None

    # -- the algebra ----------------------------------------------------------------------
    def evaluation(self, low: int, high: int) -> Evaluation | None:
        """The algebra's verdict on every size in [low, high], or None (``unmodelled`` says why)."""
        for (a, b), found in self._evaluations.items():
            if a <= low and high <= b:
                return found
        if self.unmodelled is not None:
            return None
        try:
            result, batch, size = self._algebra_trace(low, high)
            found = evaluate(result.layers, [d is None for d in self.template], batch,
                             range(min(low, 1), max(high, 1024) + 1), size)
        except Unmodelled as exc:
            self.unmodelled = str(exc)
            return None
        self._evaluations[(min(low, 1), max(high, 1024))] = found
        return found

    def _algebra_trace(self, low: int, high: int) -> tuple[TraceResult, int, int]:
        if self._algebra is None:
            given = self._given
            size = self._square(given[0]) if given is not None else None
            if given is not None and size is not None:
                self._algebra = (given[0], given[1], size)
            else:
                self._algebra = self._own_trace(low, high)
        result = self._algebra[0]
        if result.device != "meta" or not result.outputs or any(not f.recovered for f in result.failures):
            raise Unmodelled("the trace at one size " + (
                "read tensor values" if result.device != "meta" else "did not run to the end"))
        if any(f.kind == "code" for f in result.failures):
            raise Unmodelled("the forward raised an error of its own code")
        return self._algebra

    def _square(self, result: TraceResult) -> int | None:
        """The size the free dimensions had in ``result``, when they all had one."""
        first = result.layers[0].input_shapes[0] if result.layers and result.layers[0].input_shapes else ()
        free = {d for d, t in zip(first[1:], self.template) if t is None}
        fixed = all(t is None or d == t for d, t in zip(first[1:], self.template))
        return free.pop() if len(free) == 1 and fixed and len(first) == len(self.template) + 1 else None

    def _own_trace(self, low: int, high: int) -> tuple[TraceResult, int, int]:
        """One trace at a size the model likely takes; a size where it stops tells nothing.
        At most three tries, none above 224: a recurrent net runs a Python loop per step."""
        result = None
        likely = [s for s in (224, 64, 32, 128, 16) if low <= s <= high] or [min(max(low, 64), high)]
        for size in likely[:3]:
            # On the meta twin the checking forwards use after: its weights need no stand-ins.
            # keep: the twin is shapecheck's own, so it needs no snapshot of its own.
            result = trace(self._meta_model(), self._specs(size), 1, self.mode, keep=True)
            if result.outputs and all(f.recovered for f in result.failures):
                break
        return result, 1, size  # type: ignore[return-value]

    def _specs(self, size: int) -> tuple[InputSpec, ...]:
        first = InputSpec(self.shape(size), self.inputs[0].dtype, self.inputs[0].name)
        return (first, *self.inputs[1:])

    def solve(self, low: int, high: int, fallback: tuple[int, int] | None = None) -> Sizes:
        """The algebra's answer, checked by real forwards; the sweep where it cannot serve.
        ``fallback`` bounds the sweep instead (a sweep of 1..4096 is slow): it goes from ``low``
        to the fallback's top."""
        if high - low + 1 > MAX_SIZES:  # the algebra holds a few arrays of every size at once
            raise UsageError(f"the range {low}..{high} holds {high - low + 1:,} sizes; at most {MAX_SIZES:,} "
                             f"are answered at once (about {MAX_SIZES * 128 // 2**20} MiB): split it")
        with preserved(self.model):
            return self._solve(low, high, fallback)

    def _solve(self, low: int, high: int, fallback: tuple[int, int] | None) -> Sizes:
        found = self.evaluation(low, high)
        if found is not None:
            answer = self._from_algebra(found, low, high)
            # No size at all is an answer its edges cannot check: the sweep tries each one.
            contradicted = self._contradiction(answer) if answer.accepted else "it accepts no size"
            if contradicted is None:
                return answer
            self.unmodelled = contradicted
        # The fallback sweeps from the range's own low end: the smallest sizes are the cheapest
        # forwards, and a sweep from 16 reported 16 as the minimum of models that take 1.
        low, high = (low, fallback[1]) if fallback else (low, high)
        return replace(self.sweep(low, high), why_sweep=self.unmodelled)

    def _from_algebra(self, found: Evaluation, low: int, high: int) -> Sizes:
        inside = (found.sizes >= low) & (found.sizes <= high)
        accepted = tuple(int(s) for s in found.sizes[inside & found.ok])
        lossy: dict[int, list[Drop]] = {}
        for drop in found.drops:
            columns = [np.broadcast_to(d, found.sizes.shape) for d in (*drop.inputs, *drop.outputs, *drop.pixels)]
            rank = len(drop.pixels)
            for i in np.flatnonzero(inside & found.ok & (sum(np.asarray(c) for c in columns[2 * rank:]) > 0)):
                values = [int(c[i]) for c in columns]
                lossy.setdefault(int(found.sizes[i]), []).append(
                    Drop(drop.layer, tuple(values[:rank]), tuple(values[rank:2 * rank]), tuple(values[2 * rank:])))
        return Sizes(self.template_text, low, high, accepted, {k: tuple(v) for k, v in sorted(lossy.items())},
                     "meta", method="algebra", verified=self._checkpoints(accepted, low, high))

    def _checkpoints(self, accepted: tuple[int, ...], low: int, high: int) -> tuple[int, ...]:
        """Where a real forward checks the algebra: both sides of the accepted set's first
        run and of its last (the top of the range included: a branch on the size may take
        another path there), and one size inside and one outside it. Each check is a whole
        forward, so a periodic set's hundreds of edges are sampled rather than walked."""
        runs: list[tuple[int, int]] = []
        for size in accepted:
            if runs and size == runs[-1][1] + 1:
                runs[-1] = (runs[-1][0], size)
            else:
                runs.append((size, size))
        if not runs:
            return (low, (low + high) // 2, high)
        (a, b), (_, last) = runs[0], runs[-1]
        picked = {a - 1, a, b, b + 1, last, last + 1}
        taken = set(accepted)
        refused = [s for s in range(low, high + 1) if s not in taken and s not in picked]
        inside = [s for s in accepted if s not in picked]
        picked.update(pool[len(pool) // 2] for pool in (inside, refused) if pool)
        return tuple(sorted(s for s in picked if low <= s <= high))

    def _contradiction(self, answer: Sizes) -> str | None:
        taken = set(answer.accepted)
        for size in answer.verified:
            probe = self.probe(size)
            if probe.ok != (size in taken):
                return (f"a forward at {_dims(self.shape(size))} {'runs' if probe.ok else 'fails'}, "
                        f"where the algebra says it {'runs' if size in taken else 'fails'}")
            if probe.ok and {d.layer: d for d in probe.drops} != {d.layer: d for d in answer.lossy.get(size, ())}:
                return f"the pixels lost at {_dims(self.shape(size))} differ from the algebra's"
        return None

    def shape(self, size: int) -> tuple[int, ...]:
        return tuple(size if d is None else d for d in self.template)

    def probe(self, size: int) -> Probe:
        if size not in self._cache:
            self._cache[size] = self._run(size)
        return self._cache[size]

    def sweep(self, low: int, high: int) -> Sizes:
        # The meta twin shares the model's plain tensors and other objects; a forward that
        # writes one in place must not leave it changed (shapecheck.preserve).
        with preserved(self.model):
            probes = [self.probe(size) for size in range(low, high + 1)]
        accepted = tuple(p.size for p in probes if p.ok)
        lossy = {p.size: p.drops for p in probes if p.ok and p.drops}
        return Sizes(self.template_text, low, high, accepted, lossy, self.device, method="sweep",
                     verified=tuple(range(low, high + 1)))

    def fits(self, linear: str, features: int, start: int) -> tuple[int, ...]:
        """Sizes near ``start`` at which ``linear`` receives ``features`` per sample.

        These probes use the full trace, which recovers from failures, so a hard-coded
        ``view`` before the Linear does not hide the features that would reach it.
        """
        algebra = self.evaluation(1, 2 * start)
        if algebra is not None:
            widths = algebra.features(linear)
            if widths:
                return tuple(s for s in range(1, 2 * start + 1) if widths.get(s) == features)
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
            layers = trace(self.model, self._specs(size), 1, self.mode).layers
            self._traced[size] = {
                layer.name: layer.input_shapes[0][-1] for layer in reversed(layers)
                if layer.attr("in_features") is not None and layer.input_shapes
                and len(layer.input_shapes[0]) > 1 and layer.input_shapes[0][0] == 1}
        return self._traced[size]

    def width_varies(self, linear: str, start: int) -> bool:
        """Whether the features ``linear`` receives change with the input size at all."""
        algebra = self.evaluation(start, 2 * start)
        features = algebra.features(linear) if algebra is not None else {}
        if features:
            return len({features.get(size) for size in (start, 2 * start)} - {None}) > 1
        widths = {self._features(size).get(linear) for size in (start, 2 * start)}
        return len(widths - {None}) > 1

    def nearest(self, start: int, reach: int = 64) -> tuple[int | None, int | None]:
        """The closest sizes below and above ``start`` at which the forward runs."""
        algebra = self.evaluation(max(1, start - reach), start + reach)
        if algebra is not None:
            runs = set(algebra.accepted())
            return (next((s for s in range(start - 1, max(start - reach, 0), -1) if s in runs), None),
                    next((s for s in range(start + 1, start + reach + 1) if s in runs), None))
        below = next((s for s in range(start - 1, max(start - reach, 0), -1) if self.probe(s).ok), None)
        above = next((s for s in range(start + 1, start + reach + 1) if self.probe(s).ok), None)
        return below, above

    def smallest(self, start: int, limit: int = 1024) -> int | None:
        """The smallest size above ``start`` at which the forward runs."""
        algebra = self.evaluation(start + 1, max(limit, start))
        if algebra is not None:
            runs = set(algebra.accepted())
            return next((s for s in range(start + 1, max(limit, start) + 1) if s in runs), None)
        return next((s for s in range(start + 1, max(limit, start) + 1) if self.probe(s).ok), None)

    def _call(self, xs: tuple, named: dict[str, Any]) -> Any:
        """One forward: on meta, of a meta twin of the model, built once; on CPU, of the model
        with stand-in weights swapped in for this call."""
        if self.device == "meta":
            return self._meta_model()(*xs, **named)
        tree = module_tree(self.model)
        if self._weights is None:
            self._weights = stand_ins(self.model, self.device, tree)
        with in_mode(self.model, self.mode, tree):
            return call_with(self.model, self._weights, tree, xs, named)

    def _meta_model(self) -> nn.Module:
        if self._twin is None:
            self._twin = lazy.meta_twin(self.model, self.mode)
        return self._twin

    def _names(self) -> dict[int, str]:
        # Built on the first probe: most analyses never probe.
        if self._module_names is None:
            probed = self._meta_model() if self.device == "meta" else self.model
            self._module_names = {id(m): n for n, m in probed.named_modules()}
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
            self.device, self._weights, self._cache, self._module_names = "cpu", None, {}, None
            return self._forward(size)

    def _forward(self, size: int) -> Probe:
        xs, named = make_arguments(self._specs(size), 1, self.device)
        drops: list[Drop] = []
        try:
            with self._recording(drops), torch.no_grad(), torch.device(self.device), \
                    FastMetaMode() if self.device == "meta" else nullcontext():
                out = self._call(xs, named)
        except Exception as exc:  # any failure means "this size does not run"
            if self.device == "meta":
                raise_if_needs_values(exc)
            return Probe(size, False, f"{type(exc).__name__}: {str(exc).strip()[:200]}", tuple(drops))
        rows = _leading(out)
        if rows not in (None, 1):  # runs, but the batch is folded: not an accepted size
            return Probe(size, False, f"one sample came out as {rows} rows", tuple(drops))
        return Probe(size, True, None, tuple(drops))

    def _calls_functional_windows(self) -> bool:
        """The user's forward calls a functional pool or convolution, as the trace at hand
        shows (the algebra reads that same trace); without one, assume it does."""
        traced = self._given or self._algebra
        if traced is None:
            return True
        return any(l.kind == "function" and l.name in functional.TWINS for l in traced[0].layers)

    @contextmanager
    def _recording(self, drops: list[Drop]) -> Iterator[None]:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            name = self._names().get(id(module))
            x = args[0] if args and isinstance(args[0], torch.Tensor) else None
            if name is None or x is None:
                return
            shape = tuple(x.shape)
            key = (id(module), len(shape))
            if key not in self._windows:  # a module's windows do not change between forwards
                kind = type(module).__name__
                self._windows[key] = arithmetic.windows_from(kind, dict(module_attrs(module)),
                                                             arithmetic.spatial_rank(kind, shape))
            drop = _drop(name, type(module).__name__, self._windows[key], shape)
            if drop is not None:
                drops.append(drop)

        def called(name: str, x: torch.Tensor, attrs: tuple[tuple[str, Any], ...]) -> None:
            kind = functional.twin_type("function", name, name)
            found = arithmetic.windows_from(kind, dict(attrs), arithmetic.spatial_rank(kind, tuple(x.shape)))
            drop = _drop(name, kind, found, tuple(x.shape))
            if drop is not None:
                drops.append(drop)

        # Functional pools and convolutions in the user's forward are rows of the algebra too.
        # Their recorder costs a Python call per torch op (a quarter of a ResNet-50 probe), so
        # it runs only for a model whose trace has such rows.
        functions = _FunctionalWindows(called) if self._calls_functional_windows() else nullcontext()
        with patches.module_pre_hook(hook), functions:  # this context's calls only
            yield


class _FunctionalWindows(TorchFunctionMode):
    """Reports each functional pool or convolution the user's own code calls, as the trace
    makes rows of them: the same name, the same twin's arguments."""

    def __init__(self, report: Callable[[str, torch.Tensor, tuple[tuple[str, Any], ...]], None]) -> None:
        super().__init__()
        self.report = report

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = op_names(func)[0]
        if name in functional.TWINS and args and isinstance(args[0], torch.Tensor) \
                and sources.user_frame(sys._getframe(1)) is not None:
            self.report(name, args[0], functional.attrs(name, args, kwargs))
        return func(*args, **kwargs)


def _leading(out: Any) -> int | None:
    """The leading size of the first output tensor, batch-sized in a model that keeps the batch."""
    while isinstance(out, list | tuple | dict) and out:
        out = next(iter(out.values())) if isinstance(out, dict) else out[0]
    return out.shape[0] if isinstance(out, torch.Tensor) and out.dim() else None


def _drop(name: str, kind: str, found: tuple[arithmetic.Window, ...] | None, shape: tuple[int, ...]) -> Drop | None:
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


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


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
