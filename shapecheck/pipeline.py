"""One run for every entry point: a target and one options record in, a Report out.

``shapecheck TARGET`` builds the options from its flags; project mode (no target, or the
files pre-commit passes) builds them from each configured or zero-config model. Both then go
through ``run``, and both render with the same formatters.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from shapecheck.report import Report, Shape
from shapecheck.spec import InputSpec


@dataclass(frozen=True)
class Options:
    """Everything an analysis of one model takes besides the model."""

    inputs: tuple[InputSpec, ...]
    batch: int = 2
    batch_dim: int = 0  # where the batch goes: 1 for a sequence-first model's [T, B, ...]
    output: Shape | None = None
    mode: str = "eval"
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    max_params: str | int | None = None
    max_macs: str | int | None = None
    max_activation_memory: str | int | None = None
    checkpoint: str | None = None
    timeout: float | None = None  # seconds for building and analyzing the model (--timeout)
    max_cpu_memory: str | int | None = None  # bytes the CPU fallback may use (--max-cpu-memory)


def run(target: Any, options: Options, *, verbose: bool = False, fresh: bool = False) -> Report:
    """Build ``target`` (a shapecheck.target.Target) and analyze it with ``options``."""
    from shapecheck.analysis import analyze
    from shapecheck.render.numbers import size
    from shapecheck.target import build
    from shapecheck.errors import UsageError
    from shapecheck.sources import traceback_location
    from shapecheck.usercode import ModelExited, TimedOut, deadline, describe, running

    # The user's import, constructor and forward: see shapecheck.usercode.
    with running(target.path or target.module), deadline(options.timeout):
        try:
            built = build(target, verbose=verbose, fresh=fresh)
            report = analyze(built.model, list(options.inputs), name=built.target.name, path=built.target.path,
                             origin=built.origin, batch=options.batch, batch_dim=options.batch_dim, output=options.output, mode=options.mode,
                             select=options.select, ignore=options.ignore, max_params=options.max_params,
                             max_macs=options.max_macs, max_activation_memory=options.max_activation_memory,
                             checkpoint=options.checkpoint, max_cpu_memory=options.max_cpu_memory)
        except TimedOut as exc:  # outside the forward, where no layer can carry it: importing, building
            where = traceback_location(exc)
            raise UsageError(f"{target.text}: not finished within --timeout {exc.seconds:g} s"
                             + (f" (at {where})" if where else "")) from None
        except (SystemExit, ModelExited) as exc:  # outside the forward too: a state_dict hook, a __getattr__
            raise UsageError(describe(exc, f"checking {target.name}", traceback_location(exc))) from None
    if built.device == "cpu":
        memory = size(report.totals.param_bytes + report.totals.buffer_bytes)
        report = replace(report, notes=(*report.notes, f"the constructor needs real values, so the model was "
                                                       f"built on CPU, with {memory} of real parameters and buffers"))
    return report


def options_for(model: Any, project: Any) -> Options:
    """The options of a configured or zero-config model (config.ModelConfig) in a project
    (config.Config): its own settings, with the project's select and ignore."""
    from shapecheck.rules.registry import known
    from shapecheck.spec import parse_dtype, parse_input

    dtype = parse_dtype(model.dtype) if model.dtype else None
    checkpoint = str(project.root / model.checkpoint) if model.checkpoint else None
    return Options(
        inputs=tuple(parse_input(text, dtype) for text in model.input), batch=model.batch, batch_dim=model.batch_dim,
        output=parse_input(model.output).shape if model.output else None, mode=model.mode,
        select=known(model.select or project.select, "select"), ignore=known(project.ignore + model.ignore, "ignore"),
        max_params=model.max_params, max_macs=model.max_macs, max_activation_memory=model.max_activation_memory,
        checkpoint=checkpoint, timeout=project.timeout, max_cpu_memory=project.max_cpu_memory)
