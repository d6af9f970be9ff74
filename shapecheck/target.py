"""Resolve ``path/to/file.py:Name(kw=1)`` or ``package.module:Name`` and build the model."""
from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import torch
from torch import nn

from shapecheck import patches, torchapi
from shapecheck.errors import UsageError
from shapecheck.patches import collector_paused
from shapecheck.report import Location
from shapecheck.sources import display_path, factory_site, instance_site, is_user_file, traceback_location
from shapecheck.usercode import ModelExited, describe


@dataclass(frozen=True)
class Target:
    text: str
    module: str
    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    @property
    def is_file(self) -> bool:
        return self.path is not None


@dataclass(frozen=True)
class Built:
    model: nn.Module
    target: Target
    device: str  # "meta"; "cpu" when the constructor needed real values; "instance" when the file made it
    origin: Location | None = None  # where the model was created: a factory's return, a module-level assignment


def parse_target(text: str) -> Target:
    """Split ``where:Name(args)``; the arguments must be literals (nothing is evaluated)."""
    where, sep, call = text.strip().rpartition(":")
    if not sep or not where or not call:
        raise UsageError(f"invalid target {text!r}: write FILE.py:Name or package.module:Name")
    name, args, kwargs = _parse_call(text, call)
    looks_like_file = where.endswith(".py") or os.sep in where or "/" in where
    return Target(text, where, name, args, kwargs, where if looks_like_file else None)


def _parse_call(text: str, call: str) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    try:
        node = ast.parse(call.strip(), mode="eval").body
    except SyntaxError:
        raise UsageError(f"invalid target {text!r}: {call!r} is not Name or Name(key=value)") from None
    if isinstance(node, ast.Name):
        return node.id, (), {}
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise UsageError(f"invalid target {text!r}: {call!r} is not Name or Name(key=value)")
    try:
        args = tuple(ast.literal_eval(a) for a in node.args)
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
    except ValueError:
        raise UsageError(
            f"invalid target {text!r}: constructor arguments must be literals such as 10, 'relu' or (3, 3)"
        ) from None
    return node.func.id, args, kwargs


def load(target: Target, fresh: bool = False) -> Any:
    """Import the target's module as the user's project would and return ``Name``.

    ``fresh`` imports it again, for the re-analysis after --fix rewrote the file.
    """
    if fresh:
        _forget_user_modules(target)
    module = _import_file(target) if target.is_file else _import_module(target)
    if not hasattr(module, target.name):
        raise UsageError(f"{target.module} has no {target.name!r}; {_candidates(module)}")
    return getattr(module, target.name)


def _instance_site(model: nn.Module, target: Target) -> Location | None:
    """Where a module-level ``name = nn.Sequential(...)`` creates the model, to locate its items."""
    module = sys.modules.get(_package_root(os.path.abspath(target.module))[1] if target.is_file else target.module)
    path = getattr(module, "__file__", None)
    return instance_site(path, target.name) if path else None


def _forget_user_modules(target: Target) -> None:
    """Drop the target's module and every user module loaded from its folder (a sibling file
    that defines a layer, a helper package), so a re-analysis after --fix reads them all anew."""
    name = _package_root(os.path.abspath(target.module))[1] if target.is_file else target.module
    root = _package_root(os.path.abspath(target.module))[0] if target.is_file else os.getcwd()
    folder = os.path.join(root, "")
    for key, module in list(sys.modules.items()):
        path = os.path.abspath(getattr(module, "__file__", None) or "")
        if key == name or (path.startswith(folder) and is_user_file(path)):
            sys.modules.pop(key, None)


def build(target: Target, verbose: bool = False, fresh: bool = False) -> Built:
    """Construct the model on the meta device, falling back to CPU when ``__init__`` needs values."""
    factory = load(target, fresh)
    if isinstance(factory, nn.Module):  # file.py:model, where model = nn.Sequential(...): analyzed as is
        if target.args or target.kwargs:
            raise UsageError(f"{target.text}: {target.name} is a model instance, not a class; drop the arguments")
        device = next((t.device.type for t in (*factory.parameters(), *factory.buffers())), "cpu")
        return Built(factory, target, device if device == "meta" else "instance", _instance_site(factory, target))
    if not callable(factory):
        raise UsageError(f"{target.text}: {target.name} is not an nn.Module class or a function returning one")
    _check_arguments(target, factory)
    try:
        model, device = construct(factory, *target.args, **target.kwargs)
    except (SystemExit, ModelExited) as exc:
        raise UsageError(describe(exc, f"constructing {target.name}", traceback_location(exc))) from None
    except Exception as exc:
        if verbose:
            raise
        where = traceback_location(exc)
        at = f" at {where}" if where else ""
        raise UsageError(
            f"constructing {target.name} raised {type(exc).__name__}{at}: {_first_line(exc)}"
        ) from exc
    if not isinstance(model, nn.Module):
        raise UsageError(f"{target.text}: {target.name}(...) returned {type(model).__name__}, not an nn.Module")
    origin = factory_site(factory) if inspect.isfunction(factory) else None
    return Built(model, target, device, origin)


@collector_paused()
def construct(factory: Any, *args: Any, **kwargs: Any) -> tuple[Any, str]:
    """Build with meta weights: no weight memory and no initialisation cost.

    First everything is created on the meta device. A constructor that reads tensor values
    (regnet computes its widths with ``.tolist()``) gets real CPU tensors for that, and only
    its parameters go to meta as they are registered, the way accelerate's
    ``init_empty_weights`` does it. Only when that fails too is the model built on CPU.
    A failure that is not about meta values is the constructor's own: it is raised at once,
    without running the constructor again.
    """
    try:
        with _MetaDevice(), _no_meta_init():
            return factory(*args, **kwargs), "meta"
    except Exception as exc:
        if not torchapi.reads_values(exc):
            raise  # the constructor's own error: reported at once, at the user's line
    try:
        with _parameters_on_meta(), _no_meta_init():
            return factory(*args, **kwargs), "meta"
    except Exception as exc:
        if not torchapi.reads_values(exc):
            raise
    return factory(*args, **kwargs), "cpu"


class _MetaDevice(torchapi.DeviceMode):
    """``with torch.device("meta")``, without writing values that meta tensors do not have.

    On meta, ``torch.zeros`` and ``torch.ones`` run torch's Python meta kernels to make what
    ``torch.empty`` makes, and BatchNorm's ``zero_``/``fill_`` of its statistics dispatch for
    nothing: a tenth of building the torchvision zoo. A DeviceContext, so that
    ``torch.get_default_device()`` still says meta inside; it replaces torch's own, so a
    constructor's torch calls pass through one Python mode, as before.
    """

    def __init__(self) -> None:
        super().__init__("meta")

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _CONSTRUCTORS and kwargs.get("device") is None:
            kwargs["device"] = self.device
        if func in _BLANK_FACTORIES and kwargs["device"] == self.device:
            return torch.empty(*args, **kwargs)
        if func in _FILLS and args and isinstance(args[0], torch.Tensor) and args[0].is_meta \
                and not (args[0].requires_grad and torch.is_grad_enabled()):  # torch's own error then
            return args[0]
        return func(*args, **kwargs)


_CONSTRUCTORS = torchapi.device_constructors()
_BLANK_FACTORIES = frozenset({torch.zeros, torch.ones})
_FILLS = frozenset({torch.Tensor.zero_, torch.Tensor.fill_, torch.Tensor.normal_, torch.Tensor.uniform_})

@contextmanager
def _no_meta_init() -> Iterator[None]:
    """nn.init skips meta tensors while this context builds a model: their values do not exist.

    torch has no meta kernels for the random fills, so ``normal_`` on a meta tensor runs
    torch's Python reference decomposition; that was half the time of building the 80
    torchvision models. A TorchFunctionMode could skip them too, but it would sit in the path
    of every torch call of the constructor, which cost a quarter of the build. Other
    threads, and real tensors here, are initialised as before (shapecheck.patches).
    """
    with patches.inits(_skip_meta):
        yield


def _skip_meta(init: Callable[..., Any], tensor: Any, *args: Any, **kwargs: Any) -> Any:
    with torchapi.no_torch_function():  # is_meta would ask the device mode, 4x the cost
        meta = isinstance(tensor, torch.Tensor) and tensor.is_meta
    return tensor if meta else init(tensor, *args, **kwargs)


@contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Parameters this context registers go to meta; the values computed before stay real."""
    with patches.parameters_registered(_register_on_meta):
        yield


def _register_on_meta(register: Callable[..., Any], module: nn.Module, name: str,
                      param: nn.Parameter | None) -> None:
    if param is not None and param.device.type != "meta":
        param = nn.Parameter(param.detach().to("meta"), requires_grad=param.requires_grad)
    register(module, name, param)


def _check_arguments(target: Target, factory: Any) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*target.args, **target.kwargs)
    except TypeError as exc:
        missing = [p.name for p in signature.parameters.values()
                   if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                   and p.name not in target.kwargs][len(target.args):]
        if missing:
            example = ", ".join(f"{n}=..." for n in missing)
            raise UsageError(
                f"{target.name} needs arguments: {', '.join(missing)}; pass them in the target, "
                f"e.g. '{target.module}:{target.name}({example})'"
            ) from None
        raise UsageError(f"{target.text}: {exc}") from None


def _import_file(target: Target) -> ModuleType:
    path = os.path.abspath(target.module)
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {target.module}; give the path to the .py file that defines {target.name}")
    root, dotted = _package_root(path)
    if root not in sys.path:
        # The user's file imports its siblings or its own package as their project does.
        sys.path.insert(0, root)
    return _guarded(target, lambda: _exec_file(path, dotted))


def _exec_file(path: str, dotted: str) -> ModuleType:
    if "." in dotted:
        return importlib.import_module(dotted)
    existing = sys.modules.get(dotted)
    if existing is not None and os.path.abspath(getattr(existing, "__file__", "") or "") == path \
            and getattr(existing, "__shapecheck_stamp__", None) == _stamp(path):
        return existing  # loaded before in this process, and the file has not changed since
    spec = importlib.util.spec_from_file_location(dotted, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    module.__shapecheck_stamp__ = _stamp(path)  # type: ignore[attr-defined]
    sys.modules[dotted] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(dotted, None)
        raise
    return module


def _stamp(path: str) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_size


def _package_root(path: str) -> tuple[str, str]:
    """The folder to put on sys.path, and the dotted module name below it."""
    folder, stem = os.path.split(path)
    parts = [stem.removesuffix(".py")]
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        folder, package = os.path.split(folder)
        parts.insert(0, package)
    return folder, ".".join(parts)


def _import_module(target: Target) -> ModuleType:
    if "" not in sys.path and os.getcwd() not in sys.path:
        # ``pkg.mod:Name`` resolves from the working directory, as ``python -m`` does; the
        # console script's own sys.path starts at its bin folder instead.
        sys.path.insert(0, os.getcwd())
    return _guarded(target, lambda: importlib.import_module(target.module))


def _guarded(target: Target, load_it: Any) -> ModuleType:
    try:
        return load_it()
    except (SystemExit, ModelExited) as exc:
        raise UsageError(describe(exc, f"importing {target.module}", traceback_location(exc))) from None
    except ModuleNotFoundError as exc:
        if not target.is_file and exc.name and target.module.startswith(exc.name):
            raise UsageError(
                f"no module named {target.module!r}; give a file path (model.py:{target.name}) "
                "or a module importable from here"
            ) from None
        raise UsageError(_import_message(target, exc)) from exc
    except SyntaxError as exc:
        where = f"{display_path(exc.filename or target.module)}:{exc.lineno}:{exc.offset or 1}"
        raise UsageError(f"{where}: SyntaxError: {exc.msg}; fix the file, then run again") from exc
    except Exception as exc:
        raise UsageError(_import_message(target, exc)) from exc


def _import_message(target: Target, exc: BaseException) -> str:
    where = traceback_location(exc)
    line = _source_line(where.path, where.line) if where else ""
    at = f"{where}: " if where else f"{target.module}: "
    shown = f" (`{line}`)" if line else ""
    return f"{at}importing {target.module} raised {type(exc).__name__}: {_first_line(exc)}{shown}"


def _source_line(path: str, line: int) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().splitlines()[line - 1].strip()
    except (OSError, IndexError):
        return ""


def _candidates(module: ModuleType) -> str:
    names = sorted(n for n, v in vars(module).items()
                   if inspect.isclass(v) and issubclass(v, nn.Module)
                   and getattr(v, "__module__", None) == module.__name__)
    return f"nn.Module classes in it: {', '.join(names)}" if names else "it defines no nn.Module class"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
