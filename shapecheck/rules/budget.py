"""Budgets (--max-params, --max-macs, --max-activation-memory): findings like any other."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from shapecheck.render.numbers import count, size
from shapecheck.report import Finding, Location, Totals
from shapecheck.rules import registry as r
from shapecheck.rules.context import Context


@dataclass(frozen=True)
class Budgets:
    """Limits on one model. MACs are per sample; activation memory is for the traced batch and dtype."""

    max_params: int | None = None
    max_macs: int | None = None
    max_activation_memory: int | None = None


def check(ctx: Context, totals: Totals, budgets: Budgets, where: Location | None) -> Iterator[Finding]:
    largest = max((l for l in ctx.layers if l.is_leaf and l.params), key=lambda l: l.params, default=None)
    if budgets.max_params is not None and totals.params > budgets.max_params:
        top = f"; the largest layer is {largest.name} with {largest.params:,}" if largest else ""
        yield r.PARAMS_BUDGET.finding(
            f"{totals.params:,} parameters exceed --max-params {budgets.max_params:,}{top}", where)
    per_sample = totals.macs // ctx.batch
    if budgets.max_macs is not None and per_sample > budgets.max_macs:
        heavy = max((l for l in ctx.layers if l.is_leaf), key=lambda l: l.macs, default=None)
        top = f"; the heaviest layer is {heavy.name} with {count(heavy.macs // ctx.batch)}" if heavy else ""
        yield r.MACS_BUDGET.finding(
            f"{count(per_sample)} MACs per sample exceed --max-macs {count(budgets.max_macs)} "
            f"for input {ctx.input_text}{top}", where)
    if budgets.max_activation_memory is not None and totals.activation_bytes > budgets.max_activation_memory:
        yield r.MEMORY_BUDGET.finding(
            f"activation memory {size(totals.activation_bytes)} for batch {ctx.batch} exceeds "
            f"--max-activation-memory {size(budgets.max_activation_memory)} for input {ctx.input_text}", where)
