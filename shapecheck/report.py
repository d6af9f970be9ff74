"""Immutable records of one analysis: layers, totals and findings.

Analysis fills these in; rules read them; renderers format them. Nothing here computes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from shapecheck.spec import InputSpec, batch_dim_of

Shape = tuple[int, ...]
Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Location:
    path: str
    line: int
    column: int = 1

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Layer:
    """One row of the table: a module call or a functional op in a user's ``forward``."""

    index: int
    name: str
    type: str
    kind: Literal["module", "function"]
    depth: int
    parent: str
    input_shapes: tuple[Shape, ...]
    output_shapes: tuple[Shape, ...]
    input_sources: tuple[int | None, ...]
    params: int
    macs: int
    output_bytes: int
    is_leaf: bool
    failed: bool = False
    args: str = ""
    attrs: tuple[tuple[str, Any], ...] = ()  # the torch layer's configuration: in_features, stride, ...
    defined_at: Location | None = None
    called_at: Location | None = None
    # The author's constructor arguments as written, by parameter name: sources.Argument
    # records (text and span), which messages quote and --fix rewrites.
    written: tuple[tuple[str, Any], ...] = ()
    made_by: Location | None = None  # the model's call of the helper function that created this layer
    # For a functional op: which inputs are the model's own parameters or buffers, by their
    # qualified name (``pos_embed``), so a message can say ``self.pos_embed`` and not "the input".
    input_weights: tuple[str | None, ...] = ()

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def attr(self, key: str, default: Any = None) -> Any:
        return dict(self.attrs).get(key, default)

    def argument(self, key: str) -> Any:
        """The author's argument for parameter ``key`` (a sources.Argument), or None."""
        return dict(self.written).get(key)

    def written_as(self, key: str) -> str | None:
        """How the author wrote parameter ``key``: ``"20 * 12 * 12"``, on one line however
        the source wraps it."""
        found = self.argument(key)
        return " ".join(found.text.split()) if found is not None else None


@dataclass(frozen=True)
class Fix:
    """A source edit that resolves a finding: ``old`` spans (line, column) to (end_line, end_column),
    end exclusive, in characters, 1-based; ``new`` replaces it."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    old: str
    new: str

    def __str__(self) -> str:
        return f"insert {self.new.strip()!r}" if not self.old else f"replace {self.old!r} with {self.new!r}"


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    message: str
    location: Location | None = None
    layer: str | None = None
    called_at: Location | None = None
    hint: str | None = None
    fix: Fix | None = None


@dataclass(frozen=True)
class Totals:
    params: int
    trainable_params: int
    buffers: int
    macs: int
    param_bytes: int
    buffer_bytes: int
    activation_bytes: int

    @property
    def non_trainable_params(self) -> int:
        return self.params - self.trainable_params

    @property
    def flops(self) -> int:
        # torch.utils.flop_counter counts one multiply-accumulate as two FLOPs.
        return 2 * self.macs


@dataclass(frozen=True)
class Report:
    model: str
    inputs: tuple[InputSpec, ...]
    batch: int
    device: Literal["meta", "cpu"]
    layers: tuple[Layer, ...]
    totals: Totals
    outputs: tuple[Shape, ...]
    findings: tuple[Finding, ...] = ()
    path: str | None = None
    notes: tuple[str, ...] = field(default=())
    # The key path of each output (``boxes``, ``0.scores``) when the model returns dicts.
    output_names: tuple[str, ...] = ()

    def __repr__(self) -> str:
        # pytest prints this for `assert report.ok`, and a notebook's plain-text view: the
        # summary, not every layer record, and a few findings, not RAFT's dozens.
        shown = 3
        found = ", ".join(f"{f.code} {f.layer or ''}".strip() for f in self.findings[:shown])
        if len(self.findings) > shown:
            found += f", +{len(self.findings) - shown} more"
        return (f"<Report {self.model} input {self.input_text}: {len(self.layers)} layers, "
                f"{self.totals.params:,} params, {len(self.errors)} error(s)" + (f" [{found}]" if found else "") + ">")

    def _repr_html_(self) -> str:
        """Jupyter's rich display: the HTML report's picture, table and findings."""
        from shapecheck.render.html import fragment

        return fragment(self)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def ok(self) -> bool:
        return not self.errors

    def layer(self, name: str) -> Layer:
        """The first row called ``name``."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def input_text(self) -> str:
        return ", ".join(str(spec) for spec in self.inputs)

    @property
    def batch_text(self) -> str:
        """``batch 2``, ``batch 2 in dimension 1`` for sequence-first inputs, or "" where no input
        has a batch (a detector's list of images is its own batch)."""
        dim = batch_dim_of(self.inputs)
        return "" if dim is None else f"batch {self.batch}" + (f" in dimension {dim}" if dim else "")

    @property
    def input_shapes(self) -> tuple[Shape, ...]:
        """Every input tensor's whole shape, as the trace made it."""
        return tuple(leaf.batched(self.batch) for spec in self.inputs for leaf in spec.leaves)
