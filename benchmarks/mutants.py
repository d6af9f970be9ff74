"""Bug injection: mutate one number in a valid model and score shapecheck against real runs.

A mutant is a model's source file with one integer changed: a constructor argument of an
``nn.*`` layer (``in_features``, channels, a kernel, a stride, a padding) or a literal of a
``view``/``reshape`` in ``forward``. For each mutant that really fails on CPU:

- (a) **detected**: shapecheck reports an error;
- (b) **located**: the first failing layer shapecheck reports is the one a real forward
  fails in, and its finding points at that layer's line (where it is created, or for a
  functional op the line that calls it);
- (c) **rows**: the mutant is *repaired* the way shapecheck's stand-ins assume, each failing
  layer rebuilt to accept what it received (a view of ``(rows, features)`` becomes one row
  per sample), and every module row after the first failure must equal that repaired
  model's real CPU forward, call by call.

Ground truth is always a real forward on CPU; nothing here reads shapecheck's trace to
decide what is right. ``tests/test_mutations.py`` samples it with hypothesis;
``benchmarks/mutations.py`` runs thousands of mutants and writes docs/mutations.md.
"""
from __future__ import annotations

import ast
import importlib.util
import itertools
import math
import random
import sys
import tempfile
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

import shapecheck

# ---------------------------------------------------------------------------------------
# Models: generated sources with one layer a line, and the examples shipped in the repo.


@dataclass(frozen=True)
class Source:
    """A valid model: its file's text, the class to build, and one sample's input shape.
    ``lines`` limits mutations to the lines the class reads (its own, and helpers')."""

    name: str
    text: str
    input: tuple[int, ...]
    cls: str = "Net"
    lines: tuple[tuple[int, int], ...] = ()
    integer: bool = False  # token indices rather than floats

    @property
    def spec(self) -> str:
        return "x".join(map(str, self.input)) + (":int64" if self.integer else "")

    def example(self, batch: int = 2) -> torch.Tensor:
        if self.integer:  # indices below every vocabulary a mutation can leave
            return torch.randint(0, 2, (batch, *self.input))
        return torch.randn(batch, *self.input)


def _conv_out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def generate(rng: random.Random) -> Source:
    """A random valid CNN (1-D to 3-D, with transposed convolutions), MLP or RNN stack."""
    kind = rng.choice(["cnn1d", "cnn2d", "cnn2d", "cnn3d", "mlp", "rnn", "sequential", "unet", "attention",
                       "embedding"])
    makers = {"mlp": _mlp, "rnn": _rnn, "sequential": _sequential, "unet": _unet, "attention": _attention,
              "embedding": _embedding}
    return makers[kind](rng) if kind in makers else _cnn(rng, int(kind[3]))


def _render(name: str, init: list[str], forward: list[str], shape: tuple[int, ...]) -> Source:
    lines = ["import torch", "from torch import nn", "import torch.nn.functional as F", "", "",
             "class Net(nn.Module):", "    def __init__(self):", "        super().__init__()"]
    lines += [f"        {line}" for line in init]
    lines += ["", "    def forward(self, x):"] + [f"        {line}" for line in forward] + ["        return x", ""]
    return Source(name, "\n".join(lines), shape)


def _cnn(rng: random.Random, rank: int) -> Source:
    dim = f"{rank}d"
    c = rng.choice([1, 3, 4])
    size = {1: rng.randint(16, 64), 2: rng.randint(12, 40), 3: rng.randint(8, 14)}[rank]
    shape = (c, *(size,) * rank)
    init: list[str] = []
    forward: list[str] = []
    n = size
    for i in range(rng.randint(1, 3)):
        k, s = rng.choice([1, 3, 5]), rng.choice([1, 1, 2])
        p = rng.randint(0, k // 2)
        if _conv_out(n, k, s, p) < 2:
            break
        out = rng.choice([4, 6, 8, 12, 16])
        init.append(f"self.conv{i} = nn.Conv{dim}({c}, {out}, {k}, stride={s}, padding={p})")
        forward.append(f"x = self.conv{i}(x)")
        n, c = _conv_out(n, k, s, p), out
        if rng.random() < 0.5:
            init.append(f"self.bn{i} = nn.BatchNorm{dim}({c})")
            forward.append(f"x = self.bn{i}(x)")
        forward.append("x = F.relu(x)")
        if n >= 4 and rng.random() < 0.6:
            init.append(f"self.pool{i} = nn.MaxPool{dim}(2)")
            forward.append(f"x = self.pool{i}(x)")
            n //= 2
    if rank == 2 and rng.random() < 0.4:
        out = rng.choice([4, 8])
        k = rng.choice([2, 3])
        init.append(f"self.up = nn.ConvTranspose2d({c}, {out}, {k}, stride=2)")
        forward.append("x = self.up(x)")
        n, c = (n - 1) * 2 + k, out
    features = c * n ** rank
    style = rng.choice(["flatten", "view", "view_rows"])
    forward.append({"flatten": "x = x.flatten(1)", "view": f"x = x.view(x.size(0), {features})",
                    "view_rows": f"x = x.view(-1, {features})"}[style])
    hidden = rng.choice([16, 32])
    init += [f"self.fc1 = nn.Linear({features}, {hidden})", f"self.fc2 = nn.Linear({hidden}, {rng.randint(2, 10)})"]
    forward += ["x = F.relu(self.fc1(x))", "x = self.fc2(x)"]
    return _render(f"cnn{dim}", init, forward, shape)


def _mlp(rng: random.Random) -> Source:
    width = first = rng.randint(4, 64)
    init: list[str] = []
    forward: list[str] = []
    for i in range(rng.randint(2, 4)):
        out = rng.choice([8, 16, 24, 32])
        init.append(f"self.fc{i} = nn.Linear({width}, {out})")
        forward.append(f"x = self.fc{i}(x)")
        if rng.random() < 0.5:
            init.append(f"self.norm{i} = nn.LayerNorm({out})")
            forward.append(f"x = self.norm{i}(x)")
        forward.append("x = torch.relu(x)")
        width = out
    return _render("mlp", init, forward, (first,))


def _rnn(rng: random.Random) -> Source:
    steps, features = rng.randint(3, 12), rng.randint(4, 16)
    embed, hidden = rng.choice([8, 16]), rng.choice([12, 20])
    cell = rng.choice(["LSTM", "GRU", "RNN"])
    both = rng.random() < 0.5
    init = [f"self.embed = nn.Linear({features}, {embed})",
            f"self.rnn = nn.{cell}({embed}, {hidden}, batch_first=True, bidirectional={both})",
            f"self.head = nn.Linear({hidden * (2 if both else 1)}, {rng.randint(2, 6)})"]
    forward = ["x = self.embed(x)", "x, _ = self.rnn(x)", "x = self.head(x[:, -1])"]
    return _render(f"rnn-{cell.lower()}", init, forward, (steps, features))


def _sequential(rng: random.Random) -> Source:
    """One nn.Sequential, a layer a line, as tutorials write it."""
    c, size = rng.choice([1, 3]), rng.randint(12, 32)
    k1, k2 = rng.choice([3, 5]), rng.choice([3, 5])
    c1, c2 = rng.choice([6, 8, 16]), rng.choice([8, 16, 32])
    n = (_conv_out(size, k1, 1, 0) // 2)
    n = _conv_out(n, k2, 1, 1)
    norm = rng.choice(["nn.BatchNorm2d", "nn.GroupNorm(2, "])
    norm_line = f"nn.BatchNorm2d({c2})," if norm == "nn.BatchNorm2d" else f"nn.GroupNorm(2, {c2}),"
    init = ["self.body = nn.Sequential(",
            f"    nn.Conv2d({c}, {c1}, {k1}),", "    nn.ReLU(),", "    nn.MaxPool2d(2),",
            f"    nn.Conv2d({c1}, {c2}, {k2}, padding=1),", f"    {norm_line}", "    nn.ReLU(),",
            "    nn.Flatten(),", f"    nn.Linear({c2 * n * n}, {rng.choice([10, 32])}),", ")"]
    return _render("sequential", init, ["x = self.body(x)"], (c, size, size))


def _unet(rng: random.Random) -> Source:
    """Down, up and a skip concatenation: a mismatch there has no stand-in."""
    c, size = rng.choice([1, 3]), 2 * rng.randint(6, 16)
    w = rng.choice([4, 8])
    init = [f"self.down = nn.Conv2d({c}, {w}, 3, stride=2, padding=1)",
            f"self.mid = nn.Conv2d({w}, {w}, 3, padding=1)",
            f"self.up = nn.ConvTranspose2d({w}, {w}, 2, stride=2)",
            f"self.out = nn.Conv2d({w + c}, {rng.choice([1, 2])}, 1)"]
    forward = ["y = self.up(F.relu(self.mid(self.down(x))))", "x = self.out(torch.cat([x, y], dim=1))"]
    return _render("unet", init, forward, (c, size, size))


def _attention(rng: random.Random) -> Source:
    steps, features = rng.randint(3, 10), rng.randint(4, 16)
    heads = rng.choice([1, 2, 4])
    dim = heads * rng.choice([4, 8])
    init = [f"self.proj = nn.Linear({features}, {dim})",
            f"self.attn = nn.MultiheadAttention({dim}, {heads}, batch_first=True)",
            f"self.norm = nn.LayerNorm({dim})", f"self.head = nn.Linear({dim}, {rng.randint(2, 6)})"]
    forward = ["x = self.proj(x)", "y, _ = self.attn(x, x, x)", "x = self.norm(x + y)", "x = self.head(x)"]
    return _render("attention", init, forward, (steps, features))


def _embedding(rng: random.Random) -> Source:
    steps, vocab, dim, hidden = rng.randint(3, 12), rng.randint(8, 50), rng.choice([8, 16]), rng.choice([12, 24])
    init = [f"self.embed = nn.Embedding({vocab}, {dim})", f"self.rnn = nn.GRU({dim}, {hidden}, batch_first=True)",
            f"self.head = nn.Linear({hidden}, {rng.randint(2, 6)})"]
    forward = ["x, _ = self.rnn(self.embed(x))", "x = self.head(x[:, -1])"]
    return Source("embedding", _render("embedding", init, forward, (steps,)).text, (steps,), integer=True)


def examples(root: Path) -> list[Source]:
    """The repository's valid example models and its reference zoo, at their inputs."""
    found = []
    for name, shape in {"quiz_a.py": (3, 64, 64), "simple_cnn.py": (3, 32, 32), "cat_dog_cnn.py": (3, 64, 64),
                        "one_layer.py": (3, 32, 32)}.items():
        text = (root / "examples" / name).read_text()
        found.append(Source(f"examples/{name}", text, shape, _classes(text)[-1]))
    zoo = (root / "shapecheck" / "zoo" / "models.py").read_text()
    spans = {node.name: (node.lineno, node.end_lineno or node.lineno)
             for node in ast.parse(zoo).body if isinstance(node, ast.ClassDef | ast.FunctionDef)}
    helpers = (spans["_conv_bn"], spans["_Stage"])
    for cls in ("SimpleCNN", "TutorialNet", "QuizCNN", "CatDogCNN", "ResNetCIFAR"):
        used = (spans[cls], *helpers) if cls == "ResNetCIFAR" else (spans[cls],)
        found.append(Source(f"zoo:{cls}", zoo, (3, 32, 32), cls, used))
    return found


def _classes(text: str) -> list[str]:
    return [n.name for n in ast.parse(text).body if isinstance(n, ast.ClassDef)]


# ---------------------------------------------------------------------------------------
# Mutations: one integer literal of a layer constructor or a view, changed.


@dataclass(frozen=True)
class Mutation:
    line: int
    column: int
    end_column: int
    old: int
    new: int
    where: str  # "layer" or "view"

    def apply(self, text: str) -> str:
        lines = text.split("\n")
        row = lines[self.line - 1]
        lines[self.line - 1] = row[:self.column] + str(self.new) + row[self.end_column:]
        return "\n".join(lines)

    def __str__(self) -> str:
        return f"line {self.line}: {self.old} -> {self.new} ({self.where})"


def mutations(text: str, lines: tuple[tuple[int, int], ...] = ()) -> list[Mutation]:
    """Every one-number change: each integer literal of an ``nn.*(...)`` call or a
    ``.view``/``.reshape`` call, to n+1, n-1, 2n and n//2 (each at least 1); within ``lines``
    when given."""
    found: list[Mutation] = []
    tree = ast.parse(text)
    helpers = {n.name for n in tree.body if isinstance(n, ast.ClassDef | ast.FunctionDef)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        layer = (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "nn") \
            or (isinstance(func, ast.Name) and func.id in helpers)  # _conv_bn(3, 64), _Stage(64, 128)
        view = isinstance(func, ast.Attribute) and func.attr in ("view", "reshape")
        if not (layer or view):
            continue
        values = [*node.args, *(k.value for k in node.keywords if k.arg not in ("bias", "batch_first"))]
        for value in values:
            for const in _int_constants(value):
                for new in sorted({const.value + 1, const.value - 1, const.value * 2, const.value // 2} - {const.value}):
                    inside = not lines or any(a <= const.lineno <= b for a, b in lines)
                    if new >= 1 and const.lineno == const.end_lineno and inside:
                        found.append(Mutation(const.lineno, const.col_offset, const.end_col_offset,
                                              const.value, new, "view" if view else "layer"))
    return found


def _int_constants(node: ast.AST) -> Iterator[ast.Constant]:
    """The integer literals of an argument, inside tuples and arithmetic (``20 * 12 * 12``)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and type(sub.value) is int:
            yield sub


# ---------------------------------------------------------------------------------------
# Ground truth: real CPU forwards of the mutant and of its repaired model.

_COUNTER = itertools.count()


@dataclass(frozen=True)
class Built:
    model: nn.Module
    path: str
    created: dict[int, int]  # id(module) -> the line of the model's file that created it


def build(text: str, cls: str) -> Built:
    """Write ``text`` to a temporary file, import it and build ``cls``, noting the line of
    the file where each module object was created (inside a helper function too)."""
    folder = Path(tempfile.mkdtemp(prefix="shapecheck-mutant-"))
    name = f"mutant_{next(_COUNTER)}"
    path = folder / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # kept: inspect finds a class's source through its module
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    created: dict[int, int] = {}
    original = nn.Module.__init__

    def init(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename != str(path):
            frame = frame.f_back
        if frame is not None:
            created.setdefault(id(self), frame.f_lineno)
        original(self, *args, **kwargs)

    nn.Module.__init__ = init  # type: ignore[method-assign] - the harness runs alone, not in a user's process
    try:
        model = getattr(module, cls)()
    finally:
        nn.Module.__init__ = original  # type: ignore[method-assign]
    return Built(model, str(path), created)


@dataclass
class Run:
    """A real forward: each module call's output shapes in call order, and the first failure."""

    calls: list[tuple[str, tuple[tuple[int, ...], ...]]] = field(default_factory=list)
    failed_module: str | None = None  # the innermost leaf module that raised
    failed_input: tuple[torch.Tensor, ...] = ()
    failed_line: int | None = None  # the line of the model's file that raised, for a functional op
    error: str | None = None


def real_run(model: nn.Module, x: torch.Tensor, path: str, flatten_views: bool = False) -> Run:
    """Run ``model`` on ``x`` on CPU with hooks that record every call and the first failure."""
    names = {id(m): n for n, m in model.named_modules()}
    run, stack = Run(), []

    def pre(module: nn.Module, args: tuple) -> None:
        # Calls in the order they start, as the trace lists its rows; filled in as they end.
        stack.append((module, args, len(run.calls)))
        run.calls.append((names[id(module)], ()))

    def post(module: nn.Module, args: tuple, out: Any) -> None:
        _, _, index = stack.pop()
        run.calls[index] = (names[id(module)], _shapes(out))

    handles = [h for m in model.modules() for h in (m.register_forward_pre_hook(pre), m.register_forward_hook(post))]
    try:
        with torch.no_grad(), (_RowsPerSample() if flatten_views else _nothing()):
            model.eval()(x)
    except Exception as exc:  # noqa: BLE001 - any failure of the model is the datum
        run.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        module, args, _ = stack[-1] if stack else (model, (), 0)
        torch_layer = type(module).__module__.startswith("torch.nn") and not isinstance(
            module, nn.Sequential | nn.ModuleList | nn.ModuleDict)
        if (torch_layer or not list(module.children())) and module is not model:
            run.failed_module, run.failed_input = names[id(module)], args
        else:
            run.failed_line = _line_in(exc, path)
    finally:
        for handle in handles:
            handle.remove()
    return run


class _RowsPerSample(TorchFunctionMode):
    """A ``view``/``reshape`` to ``(rows, features)`` that fails gives one row per sample,
    the repair a user makes (``x.flatten(1)``) and the one shapecheck assumes."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        try:
            return func(*args, **kwargs)
        except RuntimeError:
            name = getattr(func, "__name__", "")
            sizes = args[1:] if len(args) > 2 else tuple(args[1]) if len(args) == 2 and isinstance(args[1], tuple | list) else ()
            if name in ("view", "reshape") and len(sizes) == 2:
                return args[0].reshape(args[0].shape[0], -1)
            raise


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _shapes(out: Any) -> tuple[tuple[int, ...], ...]:
    if isinstance(out, torch.Tensor):
        return (tuple(out.shape),)
    if isinstance(out, list | tuple):
        return tuple(s for item in out for s in _shapes(item))
    return ()


def _line_in(exc: BaseException, path: str) -> int | None:
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == path]
    return lines[-1] if lines else None


def repaired(model: nn.Module, x: torch.Tensor, path: str, limit: int = 12) -> Run:
    """The real forward of ``model`` with every failing layer rebuilt for what it received.

    Layers are replaced one failure at a time, as a user fixing the model would; a failure
    no rebuilt layer can mend (a kernel larger than its map, a ``cat`` of mismatched maps)
    ends the run there, as shapecheck's own trace ends.
    """
    for _ in range(limit):
        run = real_run(model, x, path, flatten_views=True)
        if run.failed_module is None:
            return run
        fixed = rebuild(model.get_submodule(run.failed_module), run.failed_input)
        if fixed is None:
            return run
        parent, _, attr = run.failed_module.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, fixed)
    return run


def rebuild(module: nn.Module, args: tuple) -> nn.Module | None:
    """``module`` declared for the input it received, every other setting kept; None when
    its declared sizes were not the problem."""
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if x is None:
        return None
    if isinstance(module, nn.Linear) and x.shape[-1] != module.in_features:
        return nn.Linear(x.shape[-1], module.out_features, bias=module.bias is not None)
    if isinstance(module, nn.modules.conv._ConvNd) and x.dim() >= 2 and x.shape[1] != module.in_channels:
        return type(module)(x.shape[1], module.out_channels, module.kernel_size, stride=module.stride,
                            padding=module.padding, dilation=module.dilation, groups=1,
                            bias=module.bias is not None, **_transposed(module))
    if isinstance(module, nn.modules.batchnorm._NormBase) and x.shape[1] != module.num_features:
        return type(module)(x.shape[1])
    if isinstance(module, nn.GroupNorm) and x.shape[1] != module.num_channels:
        return nn.GroupNorm(math.gcd(module.num_groups, x.shape[1]), x.shape[1])  # its shape is its input's
    if isinstance(module, nn.MultiheadAttention) and x.shape[-1] != module.embed_dim:
        return nn.MultiheadAttention(x.shape[-1], 1, batch_first=module.batch_first)
    if isinstance(module, nn.LayerNorm):
        return nn.LayerNorm(tuple(x.shape[x.dim() - len(module.normalized_shape):]))
    if isinstance(module, nn.modules.rnn.RNNBase) and x.shape[-1] != module.input_size:
        return type(module)(x.shape[-1], module.hidden_size, num_layers=module.num_layers,
                            batch_first=module.batch_first, bidirectional=module.bidirectional)
    return None


def _transposed(module: nn.Module) -> dict[str, Any]:
    return {"output_padding": module.output_padding} if isinstance(module, nn.modules.conv._ConvTransposeNd) else {}


# ---------------------------------------------------------------------------------------
# Scores.


@dataclass(frozen=True)
class Score:
    model: str
    mutation: str
    # "scored", "equivalent" (the mutant still runs), "silent" (it runs but its output lost the
    # batch) or "invalid" (it does not build)
    status: str
    detected: bool = False
    located: bool = False
    rows: int = 0
    rows_right: int = 0
    why: str = ""  # what went wrong, for the list of cases below a goal

    @property
    def perfect(self) -> bool:
        """Scored: caught, located, every row right. Still running: no error, every row right."""
        caught = not self.detected if self.status == "equivalent" else self.detected and self.located
        return caught and self.rows == self.rows_right


def score(source: Source, mutation: Mutation) -> Score:
    text = mutation.apply(source.text)
    label = (source.name, str(mutation))
    try:
        built = build(text, source.cls)
    except Exception as exc:  # noqa: BLE001 - a constructor that rejects the number: not a shape bug
        return Score(*label, "invalid", why=f"{type(exc).__name__} building")
    model, path = built.model, built.path
    x = source.example()
    truth = real_run(model, x, path)
    report = shapecheck.analyze(model, source.spec)
    output = next((shapes for name, shapes in truth.calls if name == ""), ())
    if truth.error is None and output and output[0][:1] != (x.shape[0],):
        # Runs, but the batch is folded into the features (view(-1, N) with N off): a silent bug.
        return Score(*label, "silent", bool(report.errors), True, why="" if report.errors else "no error reported")
    if truth.error is None:  # not a bug: the report must say so, with the real rows
        ours = [(layer.name, layer.output_shapes) for layer in report.layers if layer.kind == "module" and layer.depth]
        real = [call for call in truth.calls if call[0]]
        right = sum(1 for a, b in zip(ours, real) if a == b)
        false = "; ".join(f"false {f.code}: {f.message}" for f in report.errors)
        return Score(*label, "equivalent", bool(report.errors), True, max(len(ours), len(real)), right, false)
    detected = bool(report.errors)
    located, why = _located(report, truth, built)
    rows, right, row_why = _rows(report, model, x, path, truth)
    return Score(*label, "scored", detected, located, rows, right,
                 "; ".join(w for w in (why, row_why, "" if detected else "no error reported") if w))


def _located(report: shapecheck.Report, truth: Run, built: Built) -> tuple[bool, str]:
    first = next((layer for layer in report.layers if layer.failed and layer.is_leaf), None)
    if first is None:
        return False, "no failing row"
    finding = next((f for f in report.errors if f.layer == first.name), None)
    if truth.failed_module is not None:
        want = built.created.get(id(built.model.get_submodule(truth.failed_module)))
        line = finding.location.line if finding is not None and finding.location else None
        if first.name != truth.failed_module or line != want:
            return False, f"first failure {first.name} line {line}, real {truth.failed_module} line {want}"
        return True, ""
    line = first.called_at.line if first.called_at else None
    if first.kind != "function" or line != truth.failed_line:
        return False, f"first failure {first.name} line {line}, real op at line {truth.failed_line}"
    return True, ""


def _rows(report: shapecheck.Report, model: nn.Module, x: torch.Tensor, path: str,
          truth: Run) -> tuple[int, int, str]:
    """Module rows after the first real failure: how many, how many equal the repaired forward."""
    fixed = repaired(model, x, path)
    ours = [(layer.name, layer.output_shapes) for layer in report.layers
            if layer.kind == "module" and layer.depth > 0]
    real = [call for call in fixed.calls if call[0]]
    start = len([call for call in truth.calls if call[0]])  # up to the first failure, which is compared too
    start -= 1 if truth.failed_module is not None else 0
    real_after, ours_after = real[start:], ours[start:]
    right = sum(1 for a, b in zip(ours_after, real_after) if a == b)
    total = max(len(real_after), len(ours_after))
    why = ""
    if right < total:
        bad = next(((a, b) for a, b in itertools.zip_longest(ours_after, real_after) if a != b), None)
        why = f"row {bad[0]} != real {bad[1]}" if bad else ""
    return total, right, why


def sample(count: int, seed: int, root: Path | None = None) -> Iterator[tuple[Source, Mutation]]:
    """``count`` (model, mutation) pairs: the examples' every mutation first, then generated models."""
    rng = random.Random(seed)
    if root is not None:
        for source in examples(root):
            for mutation in mutations(source.text, source.lines):
                yield source, mutation
    for _ in range(count):
        source = generate(rng)
        yield source, rng.choice(mutations(source.text))
