"""Point at the user's source: where a layer was assigned and where an op was called."""
from __future__ import annotations

import ast
import hashlib
import inspect
import io
import os
import tokenize
import sysconfig
from collections.abc import Iterator, Mapping
from typing import Any
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from types import CodeType, FrameType

import torch
from torch import nn

from shapecheck.report import Location

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_SELF_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# The reference zoo is models, analyzed as a user's are: its forwards get rows and locations.
_ZOO_DIR = os.path.join(_SELF_DIR, "zoo") + os.sep


def _ours(path: str) -> bool:
    """shapecheck's own machinery, which the trace looks through."""
    return path.startswith(_SELF_DIR) and not path.startswith(_ZOO_DIR)
# Files through which torch routes a call before it reaches __torch_function__; the
# frame that called into them is the one that wrote the op.
_PLUMBING = tuple(
    os.path.join(_TORCH_DIR, p)
    for p in ("overrides.py", "_jit_internal.py", "utils/_device.py", "nn/functional.py",
              "functional.py", "_tensor.py", "utils/_contextlib.py", "_compile.py")
)
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
# Installed code that is not the user's: a location there helps no one edit their model.
_LIBRARIES = tuple(sorted({os.path.join(sysconfig.get_paths()[key], "") for key in ("stdlib", "purelib", "platlib")}))


def display_path(path: str) -> str:
    """Relative to the working directory when below it, as flake8 prints paths."""
    return _display_path(path, _cwd())


_FIXED_CWD: ContextVar[str | None] = ContextVar("shapecheck.cwd", default=None)


@contextmanager
def cwd_fixed() -> Iterator[None]:
    """Read the working directory once for an analysis, which asks for it on every row.

    Held per context, so overlapping analyses in threads, and nested ones, each keep their own.
    """
    token = _FIXED_CWD.set(os.getcwd())
    try:
        yield
    finally:
        _FIXED_CWD.reset(token)


def _cwd() -> str:
    return _FIXED_CWD.get() or os.getcwd()


@lru_cache(maxsize=1024)
def _display_path(path: str, cwd: str) -> str:
    # A trace asks for the same few files thousands of times.
    rel = os.path.relpath(path, cwd)
    return path if rel.startswith("..") else rel


def user_frame(frame: FrameType | None) -> FrameType | None:
    """The user's frame that issued a torch call, or None when torch itself did.

    ``frame`` is the caller of the interception point. Our own frames and torch's
    dispatch plumbing are skipped; a frame inside torch proper means a module's internals.
    """
    while frame is not None:
        name = frame.f_code.co_filename
        if _ours(name):
            return None
        if not name.startswith(_PLUMBING):
            break
        frame = frame.f_back
    if frame is None or frame.f_code.co_filename.startswith(_TORCH_DIR):
        return None
    return frame


def frame_location(frame: FrameType) -> Location:
    code = frame.f_code
    return _instruction_location(code, code.co_filename, frame.f_lasti, frame.f_lineno, _cwd())


@lru_cache(maxsize=16384)
def _instruction_location(code: CodeType, path: str, lasti: int, line: int, cwd: str) -> Location:
    # What inspect.getframeinfo(frame).positions computes, without reading the source file.
    # One Location per call site: a trace meets the same few sites on thousands of rows.
    # ``path`` is part of the key because code objects compare equal across files when
    # their text is the same (two copies of one model file).
    positions = _positions(code)
    index = max(lasti, 0) // 2
    column = (positions[index][2] or 0) + 1 if index < len(positions) else 1
    return Location(_display_path(path, cwd), line, column)


@lru_cache(maxsize=4096)
def _positions(code: CodeType) -> tuple[tuple[int | None, ...], ...]:
    return tuple(code.co_positions())


def traceback_location(exc: BaseException) -> Location | None:
    """The innermost frame of the user's own code in an exception's traceback: never a
    line inside torch, another installed package or the standard library."""
    found = None
    tb = exc.__traceback__
    while tb is not None:
        if is_user_file(tb.tb_frame.f_code.co_filename):
            positions = inspect.getframeinfo(tb, context=0).positions
            path = tb.tb_frame.f_code.co_filename
            column = _column(_file_lines(path), tb.tb_lineno, positions.col_offset or 0) if positions else 1
            found = Location(display_path(path), tb.tb_lineno, column)
        tb = tb.tb_next
    return found


def raised_by_user(exc: BaseException) -> bool:
    """Whether the user's own code raised ``exc``, rather than torch or a library it called.

    The innermost frame that is not shapecheck's decides: a failure inside torch (an
    IndexError from ``flatten(2)`` on a 2-D tensor, an assertion in MultiheadAttention) is
    a shape error of the model, whatever the exception's type.
    """
    last = None
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if not _ours(name):
            last = name
        tb = tb.tb_next
    return last is not None and is_user_file(last)


def is_user_file(path: str) -> bool:
    """Not shapecheck's, torch's, the standard library's or an installed package's file."""
    return not _ours(path) and not path.startswith((_TORCH_DIR, *_LIBRARIES)) and not path.startswith("<")


@dataclass(frozen=True)
class Span:
    """A source range in characters: 1-based lines and columns, end exclusive."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int


@dataclass(frozen=True)
class Argument:
    text: str
    span: Span
    literal: bool  # an integer, or integers joined by + - * // (what --fix may rewrite)


@dataclass(frozen=True, eq=False)  # one object per assignment in the source: its identity is its key
class Assignment:
    """``self.<attr> = <call>`` in a class body: where, and the call's arguments as written."""

    location: Location
    args: tuple[Argument, ...]
    keywords: tuple[tuple[str, Argument], ...]
    # For an item a helper function creates (def block(...): return nn.Sequential(...)):
    # the helper's call in the model, which made this item.
    made_by: Location | None = None


@dataclass(frozen=True)
class MethodCall:
    """``<receiver>.<method>(<args>)`` at a call site: what --fix needs to rewrite the call."""

    method: str
    args: tuple[Argument, ...]
    has_keywords: bool
    tail: Span  # from the dot after the receiver to the closing parenthesis


def module_definition(root: nn.Module, qualname: str, modules: Mapping[str, nn.Module] | None = None,
                      origin: Location | None = None) -> tuple[Location | None, Assignment | None]:
    """Where ``qualname`` was created: ``self.fc1 = ...`` in its owner's class, or the item's
    own expression inside an ``nn.Sequential(...)``.

    ``modules`` (``dict(root.named_modules())``) spares a walk from the root per lookup;
    ``origin`` is where ``root`` itself was created, when a factory built it.
    """
    if not qualname:
        return (origin if isinstance(root, _CONTAINERS) and origin else class_location(type(root))), None
    owner_name, _, attr = qualname.rpartition(".")
    owner = modules.get(owner_name) if modules is not None else _submodule(root, owner_name)
    if owner is None:
        return None, None
    if isinstance(owner, _CONTAINERS) and (owner_name or origin is not None):
        # An item of nn.Sequential(...) is created inside the container's own expression,
        # or in the helper function that builds it: that line, else the container's.
        where = module_definition(root, owner_name, modules, origin)[0]
        item = _item_site(where, attr) if where is not None else None
        return (item.location, item) if item is not None else (where, None)
    return _attribute_site(type(owner), attr, _cwd())


@lru_cache(maxsize=4096)
def _item_site(container: Location, attr: str) -> Assignment | None:
    """Where item ``attr`` of the container created at ``container`` is created, with its
    call's arguments for --fix. One object per item site, like the class assignments."""
    path = _real_path(container.path)
    if path is None:
        return None
    items = _item_positions(path)
    found = items.get((container.line, container.column, attr)) or items.get((container.line, container.column, "*"))
    if found is None:
        return None
    line, column, args, keywords, via_helper = found
    lines = _lines(path)
    return Assignment(Location(container.path, line, column), tuple(_argument(path, lines, a) for a in args),
                      tuple((key, _argument(path, lines, a)) for key, a in keywords),
                      container if via_helper else None)


@lru_cache(maxsize=256)
def _item_positions(path: str) -> dict[tuple[int, int, str], tuple[int, int, tuple, tuple, bool]]:
    """For every place in a file that creates a container of modules (``self.x = nn.Sequential(...)``,
    or an item of one), where each item is created: (line, column of the place, item key) ->
    (line, column of the item's expression), columns in characters, 1-based. The key ``*``
    stands for every item of a comprehension or of a loop of appends."""
    tree, lines = _tree(path), _lines(path)
    if tree is None:
        return {}
    helpers = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    found: dict[tuple[int, int, str], tuple[int, int, tuple, tuple, bool]] = {}

    def place(node: ast.AST) -> tuple[int, int]:
        return node.lineno, _column(lines, node.lineno, node.col_offset)  # type: ignore[attr-defined]

    def index(at: tuple[int, int], expr: ast.expr, scope: ast.AST, depth: int = 0) -> None:
        resolved = _resolved(expr, scope)
        via_helper = isinstance(resolved, ast.Call) and getattr(resolved.func, "id", None) in helpers
        for key, item in _container_items(expr, scope, helpers, depth).items():
            call = item if isinstance(item, ast.Call) else None
            found.setdefault((*at, key), (*place(item), tuple(_raw_argument(a) for a in call.args) if call else (),
                                          tuple((k.arg, _raw_argument(k.value)) for k in call.keywords if k.arg)
                                          if call else (), via_helper))
            index(place(item), item, scope, depth + 1)

    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.Module):
            for stmt in ast.walk(node):
                if isinstance(stmt, ast.Assign):
                    for target, value in _pairs(stmt):
                        if value is not None:
                            index(place(target), value, node)
                elif isinstance(stmt, ast.Return) and stmt.value is not None and isinstance(node, ast.FunctionDef):
                    index(place(stmt.value), stmt.value, node)
    return found


def instance_site(path: str, name: str) -> Location | None:
    """Where a module-level ``name = <expression>`` assigns the model (the name, as a class's
    ``self.name = ...`` is located)."""
    tree = _tree(path) if is_user_file(path) else None
    for node in tree.body if tree is not None else ():
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id == name:
            target = node.targets[0]
            return Location(display_path(path), target.lineno, _column(_lines(path), target.lineno, target.col_offset))
    return None


def factory_site(factory: Any) -> Location | None:
    """Where a factory function creates the model it returns: its one ``return`` expression."""
    code = getattr(factory, "__code__", None)
    tree = _tree(code.co_filename) if code is not None and is_user_file(code.co_filename) else None
    if tree is None:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == factory.__name__ and node.lineno <= code.co_firstlineno \
                <= (node.end_lineno or node.lineno):
            returns = [n.value for n in ast.walk(node) if isinstance(n, ast.Return) and n.value is not None]
            if len(returns) == 1:
                lines = _lines(code.co_filename)
                value = returns[0]
                return Location(display_path(code.co_filename), value.lineno,
                                _column(lines, value.lineno, value.col_offset))
    return None


def _container_items(expr: ast.expr, scope: ast.AST, helpers: Mapping[str, ast.FunctionDef],
                     depth: int) -> dict[str, ast.expr]:
    """The item expressions of a container built by ``expr``, by the key torch gives them."""
    if depth > 4:
        return {}
    expr = _resolved(expr, scope)
    if not isinstance(expr, ast.Call):
        return {}
    name = expr.func.attr if isinstance(expr.func, ast.Attribute) else getattr(expr.func, "id", "")
    if name in helpers and depth < 4:  # def block(cin, cout): return nn.Sequential(...)
        function = helpers[name]
        returned = [n.value for n in ast.walk(function) if isinstance(n, ast.Return) and n.value is not None]
        return _container_items(returned[-1], function, helpers, depth + 1) if len(returned) == 1 else {}
    if name not in ("Sequential", "ModuleList", "ModuleDict"):
        return {}
    if len(expr.args) == 1 and not isinstance(expr.args[0], ast.Starred):
        single = _resolved(expr.args[0], scope)
        if isinstance(single, ast.Call) and getattr(single.func, "id", getattr(single.func, "attr", "")) in (
                "OrderedDict", "dict") and single.args:
            single = _resolved(single.args[0], scope)
        if isinstance(single, ast.List | ast.Tuple) and all(
                isinstance(e, ast.Tuple) and len(e.elts) == 2 and isinstance(e.elts[0], ast.Constant) for e in single.elts) \
                and single.elts:
            return {str(e.elts[0].value): e.elts[1] for e in single.elts}  # type: ignore[attr-defined]
        if isinstance(single, ast.Dict):
            return {str(k.value): v for k, v in zip(single.keys, single.values) if isinstance(k, ast.Constant)}
        if name != "Sequential" or isinstance(single, ast.List | ast.ListComp | ast.Tuple):
            return _sequence(single, scope)
    return _sequence(ast.List(elts=list(expr.args)), scope)


def _sequence(node: ast.expr, scope: ast.AST) -> dict[str, ast.expr]:
    """Items of a list literal (``*rest`` from a local list spelled out), or every item of a
    comprehension at its element."""
    if isinstance(node, ast.ListComp | ast.GeneratorExp):
        return _every(node.elt)
    if not isinstance(node, ast.List | ast.Tuple):
        return {}
    items: list[ast.expr] = []
    for element in node.elts:
        if not isinstance(element, ast.Starred):
            items.append(element)
            continue
        inner = _resolved(element.value, scope)
        if isinstance(inner, ast.List | ast.Tuple) and not any(isinstance(e, ast.Starred) for e in inner.elts):
            items += inner.elts
        elif element is node.elts[-1] and len(node.elts) == 1:
            appended = _appended(element.value, scope)
            return _every(appended) if appended is not None else _sequence(inner, scope)
        else:
            return {str(i): item for i, item in enumerate(items)}
    return {str(i): item for i, item in enumerate(items)}


def _every(expr: ast.expr) -> dict[str, ast.expr]:
    """Every item is created by one expression: a comprehension's element, a loop's append."""
    return {"*": expr}


def _resolved(expr: ast.expr, scope: ast.AST) -> ast.expr:
    """A local name's one assigned value in ``scope``, else ``expr`` itself."""
    if not isinstance(expr, ast.Name):
        return expr
    values = [n.value for n in ast.walk(scope) if isinstance(n, ast.Assign) and len(n.targets) == 1
              and isinstance(n.targets[0], ast.Name) and n.targets[0].id == expr.id]
    return values[0] if len(values) == 1 else expr


def _appended(name: ast.expr, scope: ast.AST) -> ast.expr | None:
    """The one expression appended to a local list (``layers.append(nn.Conv2d(...))`` in a loop)."""
    if not isinstance(name, ast.Name):
        return None
    calls = [n.args[0] for n in ast.walk(scope) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and n.func.attr == "append" and isinstance(n.func.value, ast.Name) and n.func.value.id == name.id
             and len(n.args) == 1]
    return calls[0] if len(calls) == 1 else None


@lru_cache(maxsize=4096)
def _attribute_site(owner: type, attr: str, cwd: str) -> tuple[Location | None, Assignment | None]:
    # Asked once per traced row: a model repeats a few (class, attribute) pairs thousands of times.
    for cls in owner.__mro__:
        if cls is nn.Module or not issubclass(cls, nn.Module):
            break
        site = _assignments(cls, cwd).get(attr)
        if site is not None:
            return site.location, site
    return class_location(owner), None


@lru_cache(maxsize=1024)
def referenced_attributes(cls: type) -> frozenset[str]:
    """Every ``self.<name>`` that a method of ``cls`` (or a user base class) other than
    ``__init__`` reads."""
    found: set[str] = set()
    for klass in cls.__mro__:
        if klass is nn.Module or not issubclass(klass, nn.Module):
            break
        site = _class_site(klass)
        tree = _tree(site[0]) if site is not None else None
        node = _find_class(tree, [n for n in klass.__qualname__.split(".") if n != "<locals>"],
                           _first_line(klass)) if tree is not None else None
        for function in (n for n in ast.walk(node) if isinstance(n, ast.FunctionDef)) if node else ():
            if function.name != "__init__":
                found |= {a.attr for a in ast.walk(function) if isinstance(a, ast.Attribute)
                          and isinstance(a.value, ast.Name) and a.value.id == "self" and isinstance(a.ctx, ast.Load)}
    return frozenset(found)


def _submodule(root: nn.Module, name: str) -> nn.Module | None:
    try:
        return root.get_submodule(name)
    except AttributeError:
        return None


def class_location(cls: type) -> Location | None:
    """Where ``cls`` is defined; None for a class of torch or another installed package,
    where the user can change nothing (a finding then points at the user's call instead)."""
    site = _class_site(cls)
    if site is None or not is_user_file(site[0]):
        return None
    return Location(display_path(site[0]), site[1], _column(_lines(site[0]), site[1], site[2]))


@lru_cache(maxsize=1024)
def _assignments(cls: type, cwd: str) -> dict[str, Assignment]:
    """``self.name = ...`` in ``cls``, with paths as they read from ``cwd``."""
    site = _class_site(cls)
    if site is None:
        return {}
    path, lines = site[0], _lines(site[0])
    found: dict[str, Assignment] = {}
    for attr, line, col, args, keywords in site[3]:
        found[attr] = Assignment(
            Location(display_path(path), line, _column(lines, line, col)),
            tuple(_argument(path, lines, a) for a in args),
            tuple((key, _argument(path, lines, a)) for key, a in keywords))
    return found


# What is kept of a file's syntax tree: plain tuples of ints, strings and bools, which the
# garbage collector stops walking, where the trees of a model zoo's files held 100k objects.
_Range = tuple[int, int, int, int]  # line, column, end line, end column; columns in UTF-8 bytes as ast counts
_RawArgument = tuple[_Range, bool]  # an argument's source range, and whether it is an integer literal


def _range(node: ast.AST, start: tuple[int, int] | None = None) -> _Range:
    line, col = start or (node.lineno, node.col_offset)  # type: ignore[attr-defined]
    return line, col, node.end_lineno, node.end_col_offset  # type: ignore[attr-defined,return-value]


def _raw_argument(node: ast.expr) -> _RawArgument:
    return _range(node), _literal(node)


def _argument(path: str, lines: tuple[bytes, ...], raw: _RawArgument) -> Argument:
    return Argument(_segment(lines, raw[0]), _span(path, lines, raw[0]), raw[1])


def _segment(lines: tuple[bytes, ...], where: _Range) -> str:
    """ast.get_source_segment, without splitting the whole file again on every call."""
    first, start, last, end = where[0] - 1, where[1], where[2] - 1, where[3]
    if first == last:
        return lines[first][start:end].decode("utf-8", "replace")
    return b"\n".join([lines[first][start:], *lines[first + 1:last], lines[last][:end]]).decode("utf-8", "replace")


def _span(path: str, lines: tuple[bytes, ...], where: _Range) -> Span:
    line, col, end_line, end_col = where
    return Span(display_path(path), line, _column(lines, line, col), end_line, _column(lines, end_line, end_col))


def _file_lines(path: str) -> tuple[bytes, ...]:
    try:
        return _lines(path)
    except OSError:  # a frame of a file gone since it ran: its byte column stands
        return ()


def _column(lines: tuple[bytes, ...], line: int, col: int) -> int:
    """ast counts columns in UTF-8 bytes; editors, flake8 and ruff count characters."""
    if not 1 <= line <= len(lines):
        return col + 1
    return len(lines[line - 1][:col].decode("utf-8", "replace")) + 1


def _literal(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return type(node.value) is int
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return _literal(node.operand)
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.FloorDiv) \
        and _literal(node.left) and _literal(node.right)


def method_call(location: Location, method: str) -> MethodCall | None:
    """The ``x.method(...)`` call that starts at ``location``, if the source has one there.

    In a chain (``x.reshape(...).permute(...)``) every call starts at ``x``: the name picks one.
    """
    path = _real_path(location.path)
    if path is None:
        return None
    found = _method_calls(path).get((location.line, location.column, method))
    if found is None:
        return None
    lines = _lines(path)
    tail, args, keywords = found
    return MethodCall(method, tuple(_argument(path, lines, a) for a in args), keywords, _span(path, lines, tail))


@lru_cache(maxsize=256)
def _method_calls(path: str) -> dict[tuple[int, int, str], tuple[_Range, tuple[_RawArgument, ...], bool]]:
    """Every ``x.method(...)`` call in a file, by (line, column in characters, method): the
    range from the dot after the receiver to the closing parenthesis, the positional
    arguments, and whether there are keywords."""
    tree, lines = _tree(path), _lines(path)
    calls: dict[tuple[int, int, str], tuple[_Range, tuple[_RawArgument, ...], bool]] = {}
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = node.func.value
            calls.setdefault((node.lineno, _column(lines, node.lineno, node.col_offset), node.func.attr), (
                _range(node, start=(receiver.end_lineno, receiver.end_col_offset)),  # type: ignore[arg-type]
                tuple(_raw_argument(a) for a in node.args), bool(node.keywords)))
    return calls


def parse_expression(text: str) -> ast.expr | None:
    """The expression an argument's source span holds, or None. Parsed in parentheses, as it
    stood inside the call's: a span may run over several lines (``20\n * 12 * 12``)."""
    try:
        return ast.parse(f"({text}\n)", mode="eval").body
    except SyntaxError:
        return None


def names_a_constant(location: Location, text: str) -> bool:
    """``text`` (``BATCH``, ``bs``, ``self.batch_size``) is only ever assigned an integer literal
    in the file of ``location``: a number in disguise."""
    path = _real_path(location.path)
    node = parse_expression(text)
    if path is None or not isinstance(node, ast.Name | ast.Attribute):
        return False
    values = _assigned(path).get(ast.unparse(node), ())
    return bool(values) and all(values)


@lru_cache(maxsize=256)
def _assigned(path: str) -> dict[str, tuple[bool, ...]]:
    """For each assigned name or ``self.attr`` in a file: is each value an integer literal."""
    tree = _tree(path)
    found: dict[str, list[bool]] = {}
    for stmt in ast.walk(tree) if tree is not None else ():
        targets = stmt.targets if isinstance(stmt, ast.Assign) else (
            [stmt.target] if isinstance(stmt, ast.AnnAssign | ast.AugAssign) else [])
        for target in targets:
            if isinstance(target, ast.Name) or (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)):
                literal = not isinstance(stmt, ast.AugAssign) and stmt.value is not None and _literal(stmt.value)
                found.setdefault(ast.unparse(target), []).append(literal)
    return {name: tuple(values) for name, values in found.items()}


def _real_path(shown: str) -> str | None:
    return shown if os.path.isfile(shown) else None


def forget() -> None:
    """Drop cached sources after --fix rewrote a file."""
    _SEEN.clear()
    _source.cache_clear()
    _lines.cache_clear()
    _tree.cache_clear()
    _method_calls.cache_clear()
    _class_site.cache_clear()
    _assigned.cache_clear()
    _assignments.cache_clear()
    _attribute_site.cache_clear()
    referenced_attributes.cache_clear()
    _item_positions.cache_clear()
    _item_site.cache_clear()


@lru_cache(maxsize=1024)
def _class_site(cls: type) -> tuple[str, int, int, tuple] | None:
    """Where ``cls`` is defined (path, line, column in bytes), and each first ``self.attr = value``
    in it: (attr, line, column, positional arguments, keyword arguments) of the value's call."""
    try:
        path = inspect.getsourcefile(cls)
    except (TypeError, OSError):
        return None
    if path is None or not os.path.exists(path):
        return None
    names = [n for n in cls.__qualname__.split(".") if n != "<locals>"]
    tree = _tree(path)
    node = _find_class(tree, names, _first_line(cls)) if tree is not None else None
    if node is None:
        return None
    assignments: dict[str, tuple] = {}
    for stmt in ast.walk(node):
        if not isinstance(stmt, ast.Assign | ast.AnnAssign):
            continue
        for target, value in _pairs(stmt):
            if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                    and target.value.id == "self" and target.attr not in assignments):
                call = value if isinstance(value, ast.Call) else None
                assignments[target.attr] = (
                    target.attr, target.lineno, target.col_offset,
                    tuple(_raw_argument(a) for a in call.args) if call else (),
                    tuple((k.arg, _raw_argument(k.value)) for k in call.keywords if k.arg) if call else ())
    return path, node.lineno, node.col_offset, tuple(assignments.values())


def _pairs(stmt: ast.Assign | ast.AnnAssign) -> list[tuple[ast.expr, ast.expr | None]]:
    """(target, value) of an assignment, unpacking ``self.a, self.b = A(), B()`` element-wise."""
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    pairs: list[tuple[ast.expr, ast.expr | None]] = []
    for target in targets:
        if isinstance(target, ast.Tuple | ast.List) and isinstance(stmt.value, ast.Tuple | ast.List) \
                and len(target.elts) == len(stmt.value.elts):
            pairs += list(zip(target.elts, stmt.value.elts))
        else:
            pairs.append((target, stmt.value))
    return pairs


def _find_class(tree: ast.AST, names: list[str], line: int | None = None) -> ast.ClassDef | None:
    """The class whose qualified name is ``names`` (``Decoder.Block``, ``make.Net``), not the
    first class of that name in the file: two classes may share a name."""
    scopes: list[ast.AST] = [tree]
    for depth, name in enumerate(names):
        kinds = (ast.ClassDef,) if depth == len(names) - 1 else (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        scopes = [node for scope in scopes for node in _nested(scope) if isinstance(node, kinds) and node.name == name]
    if line is not None:
        scopes = [node for node in scopes if node.lineno <= line <= (node.end_lineno or node.lineno)] or scopes
    # Python binds the last definition of a name; a class redefined later wins.
    return scopes[-1] if scopes else None  # type: ignore[return-value]


def _first_line(cls: type) -> int | None:
    """A line inside the class's body, from one of its own functions' code (no source read)."""
    for value in vars(cls).values():
        code = getattr(getattr(value, "__func__", value), "__code__", None)
        if code is not None:
            return code.co_firstlineno
    return None


def _nested(scope: ast.AST) -> list[ast.AST]:
    """Definitions directly inside ``scope``, through if/try/with blocks but not other definitions."""
    found: list[ast.AST] = []
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop(0)
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            found.append(node)
        elif not isinstance(node, ast.expr):
            stack.extend(ast.iter_child_nodes(node))
    return found


_SEEN: dict[str, str] = {}  # a digest of each file's bytes as the analysis read them, by real path


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def digest_seen(path: str) -> str | None:
    """A digest of the bytes the analysis read from ``path``, or None if it read none: --fix
    compares it with the file on disk before it writes, and refuses a file that changed."""
    return _SEEN.get(os.path.realpath(path))


@lru_cache(maxsize=256)
def _source(path: str) -> str:
    """The file's text in its own encoding (PEP 263 cookie, or a UTF-8 BOM, which is dropped
    as Python drops it), with universal newlines."""
    with open(path, "rb") as handle:
        raw = handle.read()
    _SEEN[os.path.realpath(path)] = digest(raw)
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
    except SyntaxError:
        encoding = "utf-8"
    return raw.decode(encoding, errors="replace").replace("\r\n", "\n").replace("\r", "\n")


@lru_cache(maxsize=256)
def _lines(path: str) -> tuple[bytes, ...]:
    # _source reads with universal newlines, so "\n" is the only line break left, as for ast.
    return tuple(line.encode("utf-8") for line in _source(path).split("\n"))


@lru_cache(maxsize=8)  # the caches above keep what they need: a tree is only held while a file is read
def _tree(path: str) -> ast.Module | None:
    try:
        return ast.parse(_source(path))
    except SyntaxError:
        return None
