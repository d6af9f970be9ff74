"""The ``shapecheck`` command: a thin click layer over the analyzer.

``main(argv) -> int`` as flake8 does it: 0 clean, 1 error findings, 2 usage errors.
Heavy imports (torch) happen inside the commands, so ``--help`` stays instant, and
torchvision is never imported here.
"""
from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import click

from shapecheck.errors import UsageError
from shapecheck.usercode import ModelExited, exit_call
from shapecheck.render import FORMATS  # torch-free: the renderers load on use
from shapecheck.render.escape import terminal

EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _DefaultGroup(click.Group):
    """``shapecheck model.py:Net ...`` runs ``check``; known words run their subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and (args[0] in self.commands or args[0] in ("--help", "-h", "--version")):
            pass
        elif _is_project_call(args):
            args = ["project", *args]  # the pre-commit hook's call: changed files, or nothing
        else:
            args = ["check", *args]
        return super().parse_args(ctx, args)


def _is_project_call(args: list[str]) -> bool:
    """No TARGET (``file.py:Name``) and no --input: check the configured models."""
    return not any(":" in a for a in args) and not any(a in ("-i", "--input") or a.startswith("--input=")
                                                       for a in args)


@click.group(cls=_DefaultGroup, context_settings={"help_option_names": ["-h", "--help"],
                                                 "max_content_width": 100, "terminal_width": 100})
@click.version_option(package_name="torch-shapecheck", prog_name="shapecheck")
def cli() -> None:
    """Per-layer shapes, parameters and MACs of a PyTorch model, and shape diagnostics.

    \b
      shapecheck examples/quiz_c.py:Net --input 3x64x64
      shapecheck mypkg.models:ResNet(num_classes=10) --input 3x32x32 --format json
    """


def _output_spec(text: str) -> tuple[int, ...]:
    from shapecheck.spec import parse_input

    try:
        return parse_input(text).shape
    except UsageError:
        raise UsageError(f"invalid output spec {text!r}: give one sample's output shape without the batch, "
                         "e.g. 10 (logits) or 1x64x64 (a mask)") from None


def _split(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(code.strip().upper() for value in values for code in value.split(",") if code.strip())


# Options of every mode that runs a model's code: check and project (the pre-commit hook).
_TIMEOUT = click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
                        help="End each model's analysis after SECONDS with a finding naming the layer it was in "
                             "(project mode: default [tool.shapecheck] timeout).")
_MAX_CPU_MEMORY = click.option("--max-cpu-memory", default=None, metavar="BYTES",
                               help="Memory a value-reading forward may use on CPU, e.g. 8GiB "
                                    "(default: 80% of the free memory).")


@cli.command()
@click.argument("target")
@click.option("-i", "--input", "inputs", multiple=True, required=True,
              help="One sample's shape without the batch, e.g. 3x64x64; repeat for several inputs; "
                   "NAME=SHAPE for a keyword; [3x320x320, 3x480x640] for a list of images, "
                   "{image: 3x64x64, mask: 1x64x64} for a dict, (1x8, 1x8) for a tuple such as an "
                   "LSTM's (h, c); "
                   "append :int64 for integer inputs.")
@click.option("-b", "--batch", default=2, show_default=True, type=click.IntRange(min=1),
              help="Batch size of the dummy input.")
@click.option("--batch-dim", default=0, show_default=True, type=click.IntRange(min=0),
              help="Where the batch goes in each input: 1 for sequence-first models, whose inputs "
                   "are [T, B, ...] (PyTorch's RNN default).")
@click.option("--dtype", default=None, help="dtype of every input (float32, float16, bfloat16, int64, ...).")
@click.option("--output", default=None, help="Expected output shape per sample, e.g. 10 (SHP007).")
@click.option("--mode", type=click.Choice(["eval", "train", "same"]), default="eval", show_default=True,
              help="Module mode during the trace; the model's own flags are restored afterwards.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text (default), json (docs/json-schema.md), github (workflow annotations), "
                   "sarif (SARIF 2.1.0 for code scanning), markdown (PR comments) or html (one self-contained "
                   "page with the shape-flow picture).")
@click.option("--output-file", default=None, metavar="PATH",
              help="Write the report to PATH (atomically) instead of standard output, e.g. report.html.")
@click.option("--depth", default=3, show_default=True, type=click.IntRange(min=0),
              help="Deepest nesting level shown in the table.")
@click.option("--show-source", is_flag=True, help="Add each row's source line to the table.")
@click.option("--no-functional", is_flag=True,
              help="Leave functional rows (F.relu, view, torch.cat, +) out of the table: modules only.")
@click.option("--explain", is_flag=True,
              help="Print each layer's shape arithmetic, receptive field and stride.")
@click.option("--fix", "fix_files", is_flag=True,
              help="Rewrite the source to fix what can be fixed, then analyze again and report what remains.")
@click.option("--diff", is_flag=True, help="Print the fixes as a unified diff; write nothing.")
@click.option("--select", multiple=True, help="Rule codes or prefixes to report, e.g. SHP0.")
@click.option("--ignore", multiple=True, help="Rule codes or prefixes to leave out, e.g. SHP101.")
@click.option("--max-params", default=None, help="Parameter budget, e.g. 25M (SHP201).")
@click.option("--max-macs", default=None, help="MACs per sample budget, e.g. 600M (SHP202).")
@click.option("--max-activation-memory", default=None,
              help="Activation memory budget for --batch and --dtype, e.g. 2GiB (SHP203).")
@click.option("--checkpoint", default=None, type=click.Path(),
              help="A state_dict file to reconcile with the model (loaded with weights_only=True).")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are error findings.")
@_TIMEOUT
@_MAX_CPU_MEMORY
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks for usage errors.")
def check(target: str, inputs: tuple[str, ...], batch: int, batch_dim: int, dtype: str | None, output: str | None,
          mode: str, fmt: str, output_file: str | None, depth: int, show_source: bool, no_functional: bool,
          explain: bool, fix_files: bool,
          diff: bool,
          select: tuple[str, ...], ignore: tuple[str, ...], max_params: str | None, max_macs: str | None,
          max_activation_memory: str | None, checkpoint: str | None, exit_zero: bool, timeout: float | None,
          max_cpu_memory: str | None, verbose: bool) -> int:
    """Analyze TARGET (FILE.py:Name, package.module:Name, optionally Name(key=value))."""
    from functools import partial

    from shapecheck import pipeline
    from shapecheck.render import formatter
    from shapecheck.rules.registry import known
    from shapecheck.spec import parse_dtype, parse_input
    from shapecheck.target import parse_target

    if output_file is not None:
        from shapecheck.files import check_writable

        check_writable(output_file)
    chosen = parse_dtype(dtype) if dtype else None
    options = pipeline.Options(
        inputs=tuple(parse_input(text, chosen) for text in inputs), batch=batch, batch_dim=batch_dim,
        output=_output_spec(output) if output else None, mode=mode,
        select=known(_split(select), "--select"), ignore=known(_split(ignore), "--ignore"),
        max_params=max_params, max_macs=max_macs, max_activation_memory=max_activation_memory,
        checkpoint=checkpoint, timeout=timeout, max_cpu_memory=_bytes_or_none(max_cpu_memory))
    parsed = parse_target(target)
    run = partial(pipeline.run, parsed, options, verbose=verbose)
    if diff:
        return _diff(run(), parsed.path)
    report = _fix(run, parsed.path) if fix_files else run()
    text = formatter(fmt)(report, depth=depth, show_source=show_source, explain=explain,
                          functions=not no_functional)
    if output_file is not None:
        from shapecheck.files import write_atomic

        write_atomic(output_file, text)
    else:
        click.echo(text, nl=False)
    return EXIT_FINDINGS if report.errors and not exit_zero else EXIT_CLEAN


def _fix(run: Any, target: str | None) -> Any:
    from shapecheck import fix

    def log(change: Any) -> None:
        click.echo(terminal(f"{change.path}: fixed {len(change.applied)}: "
                            + "; ".join(f"line {f.line}: {f}" for f in change.applied)), err=True)

    roots = fix.project_roots(target)
    report = fix.until_clean(run, log, roots)
    _outside(report, roots)
    return report


def _outside(report: Any, roots: tuple[str, ...]) -> list[Any]:
    """Findings whose fix is in a file outside the project: said, never written."""
    from shapecheck import fix

    outside = [f for f in report.findings if f.fix is not None and not fix.inside(f.fix.path, roots)]
    for finding in outside:
        click.echo(terminal(f"not fixed: {finding.fix.path} is outside the project ({', '.join(roots)}): "
                            f"{finding.code} {finding.message}"), err=True)
    return outside


def _diff(report: Any, target: str | None) -> int:
    from shapecheck import fix

    roots = fix.project_roots(target)
    changes = fix.plan(report.findings, roots)
    for change in changes:
        click.echo(change.diff(), nl=False)
    unfixed = [f for f in report.findings if f.severity == "error" and f.fix is None] + _outside(report, roots)
    for finding in unfixed:
        if finding.fix is None:
            click.echo(terminal(f"not fixable: {finding.code} {finding.message}"), err=True)
    if not changes and not unfixed:
        click.echo("nothing to change: " + (f"no finding has a fix ({len(report.findings)} finding(s), no error)"
                                            if report.findings else "no finding"), err=True)
    # As ruff --diff: 1 when the files would change, so CI can require a clean tree.
    return EXIT_FINDINGS if changes or unfixed else EXIT_CLEAN


@cli.command()
@click.argument("target")
@click.option("-i", "--input", "template", required=True,
              help="One sample's shape with letters for the sizes to sweep: 3xHxW (H = W), 3x64xW, 1xL.")
@click.option("--range", "bounds", default=None,
              help="Sizes to answer for, LOW..HIGH.  [default: 1..4096; 16..512 where each size "
                   "must be traced]")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks for usage errors.")
def sizes(target: str, template: str, bounds: str | None, fmt: str, verbose: bool) -> int:
    """Which input sizes TARGET accepts, its minimum input, and which sizes lose pixels."""
    from shapecheck.render.sizes import render
    from shapecheck.sizes import Solver, parse_template
    from shapecheck.spec import parse_input
    from shapecheck.target import build, parse_target
    from shapecheck.usercode import running

    shape, dtype = parse_template(template)
    if None not in shape:
        raise UsageError(f"--input {template}: mark the sizes to sweep with letters, e.g. 3xHxW")
    low, high = _bounds(bounds or "1..4096")
    spec = parse_input(tuple(d or low for d in shape), _dtype_or_none(dtype))
    parsed = parse_target(target)
    with running(parsed.path):  # the user's code: see shapecheck.usercode
        built = build(parsed, verbose=verbose)
        solver = Solver(built.model, [spec], shape, label=template.partition(":")[0])
        result = solver.solve(low, high, fallback=None if bounds else (16, 512))
    click.echo(render(result, built.target.name, fmt), nl=False)
    return EXIT_CLEAN if result.accepted else EXIT_FINDINGS


def _dtype_or_none(text: str) -> Any:
    from shapecheck.spec import parse_dtype

    return parse_dtype(text) if text else None


def _bounds(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("..")
    if not (sep and low.strip().isdigit() and high.strip().isdigit()) or not 0 < int(low) <= int(high):
        raise UsageError(f"invalid --range {text!r}: write LOW..HIGH, e.g. 16..512")
    return int(low), int(high)


@cli.command()
@click.argument("files", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text (default), json (an array of reports), github, sarif (one run per model) or markdown.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are error findings.")
@_TIMEOUT
@_MAX_CPU_MEMORY
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks for usage errors.")
def project(files: tuple[str, ...], fmt: str, exit_zero: bool, timeout: float | None, max_cpu_memory: str | None,
            verbose: bool) -> int:
    """Check the models in pyproject.toml's [tool.shapecheck], and classes that declare
    shapecheck_input. With FILES (as pre-commit passes them), only the models defined in
    or importing those files."""
    from shapecheck import config as project_config
    from shapecheck import pipeline
    from shapecheck.render import formatter_all
    from shapecheck.target import parse_target

    found = project_config.find()
    if timeout is not None or max_cpu_memory is not None:  # the command line's word over the file's
        found = replace(found, timeout=timeout or found.timeout,
                        max_cpu_memory=_bytes_or_none(max_cpu_memory) or found.max_cpu_memory)
    selected = project_config.select(found, files)
    if not selected:
        if files:
            return EXIT_CLEAN  # the commit touches no model
        raise UsageError("nothing to check: list models under [[tool.shapecheck.models]] in pyproject.toml, "
                         "set shapecheck_input on a model class, or give TARGET --input (see shapecheck --help)")
    reports, unchecked = [], 0
    for model in selected:
        where, _, name = model.target.rpartition(":")
        located = str(found.root / where) if where.endswith(".py") else where
        target = parse_target(f"{_shown(located)}:{name}")
        try:
            reports.append(pipeline.run(target, pipeline.options_for(model, found), verbose=verbose))
        except UsageError as exc:  # this model could not be checked: say so, and check the others
            if verbose:
                traceback.print_exc()
            click.echo(terminal(f"shapecheck: error: {model.target}: {exc}"), err=True)
            unchecked += 1
    click.echo(formatter_all(fmt)(reports), nl=False)
    if unchecked:  # never a success, whatever the others found and --exit-zero says
        click.echo(f"shapecheck: {unchecked} of {len(selected)} model(s) could not be checked", err=True)
        return EXIT_USAGE
    errors = sum(len(report.errors) for report in reports)
    return EXIT_FINDINGS if errors and not exit_zero else EXIT_CLEAN


def _bytes_or_none(text: str | None) -> int | None:
    from shapecheck.spec import parse_bytes

    return parse_bytes(text, "--max-cpu-memory") if text is not None else None


def _shown(path: str) -> str:
    from shapecheck.sources import display_path

    return display_path(path)


@cli.command()
def zoo() -> int:
    """List the reference models, their input and their target accuracy."""
    from shapecheck.zoo import ZOO

    for spec in ZOO.values():
        target = f"{spec.target_accuracy:.1%}" if spec.target_accuracy else "not measured"
        click.echo(f"{spec.name:<14} {spec.input:<10} {spec.num_outputs:>2} outputs  target {target:<12} "
                   f"shapecheck.zoo:{spec.name}  ({spec.source})")
    return EXIT_CLEAN


@cli.command()
@click.argument("model")
@click.option("--data", "data_path", default=None,
              help="CIFAR-10 image folder or .tar.gz of one; default $SHAPECHECK_CIFAR10, else download.")
@click.option("--epochs", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", default="results", show_default=True, help="Folder for the results JSON and curve PNG.")
@click.option("--channels-last/--no-channels-last", default=None,
              help="Default: on for cuda where the model allows it (resnet), off for cpu.")
@click.option("--bf16/--no-bf16", default=None, help="bfloat16 autocast. Default: on for cuda, off for cpu.")
@click.option("--compile/--no-compile", "compiled", default=None,
              help="torch.compile the model. Default: on for cuda, off for cpu.")
def train(model: str, data_path: str | None, epochs: int, device: str, seed: int, out: str,
          channels_last: bool | None, bf16: bool | None, compiled: bool | None) -> int:
    """Train a zoo MODEL on CIFAR-10, cross-checking its shapes on the first batch."""
    from pathlib import Path

    import torch

    from shapecheck.zoo import ZOO
    from shapecheck.zoo import data as cifar
    from shapecheck.zoo import train as trainer

    if model not in ZOO:
        raise UsageError(f"unknown zoo model {model!r}; `shapecheck zoo` lists: {', '.join(ZOO)}")
    if device == "cpu":
        torch.set_num_threads(1)  # measured 3.7x faster than two threads on 2-core machines
    try:
        dataset = cifar.load(data_path)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    default = trainer.Accel.default(device, trainer.RECIPES[model])
    accel = trainer.Accel(default.channels_last if channels_last is None else channels_last,
                          default.bf16 if bf16 is None else bf16, default.compile if compiled is None else compiled)
    result = trainer.train(model, dataset, epochs, device, seed, accel=accel,
                           progress=lambda line: click.echo(f"\r{line}", nl=False, err=True))
    click.echo("", err=True)
    path = trainer.write(result, Path(out))
    click.echo(f"{model}: test accuracy {result.test_accuracy:.2%} after {epochs} epoch(s) in "
               f"{result.wall_time_s:.1f} s on {device}; cross-check {result.cross_check}; wrote {path}")
    return EXIT_CLEAN


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in args or "--verbose" in args
    try:
        result = cli.main(args=args, prog_name="shapecheck", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"shapecheck: error: {exc.format_message()}", err=True)
        return EXIT_USAGE
    except (click.Abort, KeyboardInterrupt):  # Ctrl-C: as a shell reports SIGINT
        click.echo("shapecheck: interrupted", err=True)
        return EXIT_INTERRUPTED
    except UsageError as exc:
        if verbose:
            traceback.print_exc()
        click.echo(terminal(f"shapecheck: error: {exc}"), err=True)
        return EXIT_USAGE
    except (SystemExit, ModelExited) as exc:  # click never raises these here: the user's code did
        click.echo(f"shapecheck: error: the model's code called {exit_call(exc)}; the check did not finish", err=True)
        return EXIT_USAGE
    except Exception as exc:  # a bug in shapecheck: still one line unless --verbose
        if verbose:
            traceback.print_exc()
        click.echo(terminal(f"shapecheck: internal error: {type(exc).__name__}: {exc}; "
                            "rerun with --verbose and report it"), err=True)
        return EXIT_USAGE
    return result if isinstance(result, int) else EXIT_CLEAN


if __name__ == "__main__":
    sys.exit(main())
