"""shapecheck never changes a user's model, through any entry point, after success or failure.

Each test takes the model's fingerprint (shapecheck.fingerprint: every module's attributes
and tables, every tensor's object, device, dtype, values, requires_grad and grad, every
flag and hook) before and after, and where the model runs, compares a real forward
afterwards with one of a deep copy taken before.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import shapecheck
from shapecheck import cli
from shapecheck.fingerprint import changes, fingerprint
from shapecheck.pytest_plugin import ShapeSnapshot
from shapecheck.sizes import Solver
from shapecheck.spec import parse_input
from tests.fixtures import stateful
from tests.fixtures.stateful import PATTERNS
from tests.test_trace import ValueBranch

CLEAN = [name for name in PATTERNS if name != "broken forward"]


def real_input(spec_text: str, batch: int = 2) -> torch.Tensor:
    spec = parse_input(spec_text)
    torch.manual_seed(1)
    if spec.dtype.is_floating_point:
        return torch.randn(spec.batched(batch), dtype=spec.dtype)
    return torch.randint(0, 5, spec.batched(batch), dtype=spec.dtype)


def copy_of(model: nn.Module, make: Any) -> nn.Module:
    """A deep copy; for lazy layers, whose uninitialised weights torch cannot copy, the same
    seeded build again."""
    try:
        return copy.deepcopy(model)
    except ValueError:
        return make()


def assert_untouched(model: nn.Module, before: dict[str, Any], twin: nn.Module, spec: str) -> None:
    """The fingerprint is as it was, and a real forward gives what the copy taken before gives."""
    assert changes(before, fingerprint(model)) == []
    x = real_input(spec)
    with torch.no_grad():  # a graph would stay behind in spectral_norm's weight, which cannot be copied
        try:
            torch.manual_seed(2)  # a lazy layer draws its weights in its first forward
            expected = twin(x)
        except Exception as exc:  # noqa: BLE001 - the broken model: both must fail alike
            with pytest.raises(type(exc)):
                model(x)
            return
        torch.manual_seed(2)
        assert torch.equal(model(x), expected)


@pytest.mark.parametrize("mode", ["eval", "train", "same"])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_analyze_with_a_spec_leaves_every_pattern_as_it_was(pattern: str, mode: str) -> None:
    make, spec = PATTERNS[pattern]
    model = make()
    before, twin = fingerprint(model), copy_of(model, make)
    shapecheck.analyze(model, spec, mode=mode)
    assert_untouched(model, before, twin, spec)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_analyze_with_real_tensors_leaves_every_pattern_as_it_was(pattern: str) -> None:
    make, spec = PATTERNS[pattern]
    model = make()
    before, twin = fingerprint(model), copy_of(model, make)
    shapecheck.analyze(model, real_input(spec, batch=3), mode="train")
    assert_untouched(model, before, twin, spec)


def test_a_module_registered_twice_keeps_its_real_weights() -> None:
    model = stateful.SharedStem()
    weight = model.stem.weight
    shapecheck.analyze(model, "3x8x8")
    assert model.stem.weight is model.path[0].weight is weight
    assert weight.device.type == "cpu"
    model(torch.randn(1, 3, 8, 8))  # the real forward runs: no weight was left on meta


def test_an_attribute_the_forward_fills_is_kept_and_not_reported() -> None:
    model = stateful.cached_mask()
    report = shapecheck.analyze(model, "7:int64")
    assert vars(model)["src_mask"] is None
    assert not report.findings  # no SHP009 "has no attribute 'src_mask'" from a second trace


def test_the_cpu_fallback_copies_real_weights_and_keeps_the_random_stream() -> None:
    model = ValueBranch()
    before = fingerprint(model)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    assert shapecheck.analyze(model, "4", mode="train").device == "cpu"
    assert torch.equal(torch.rand(3), expected)  # stand-ins come from a private generator
    assert changes(before, fingerprint(model)) == []


class _Interrupting(nn.Module):
    """Changes itself, then the user presses Ctrl-C in the middle of its forward."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.half_done = True
        self.fc.register_forward_hook(lambda *a: None)
        raise KeyboardInterrupt


def test_a_keyboard_interrupt_in_the_forward_leaves_the_model_as_it_was() -> None:
    model = _Interrupting()
    before = fingerprint(model)
    with pytest.raises(KeyboardInterrupt):
        shapecheck.analyze(model, "4")
    assert changes(before, fingerprint(model)) == []


def test_the_analysis_raising_midway_leaves_the_model_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    from shapecheck import analysis

    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("shapecheck's own failure after the trace")

    monkeypatch.setattr(analysis, "_totals", fail)
    model = stateful.cached_mask()
    before = fingerprint(model)
    with pytest.raises(RuntimeError, match="own failure"):
        shapecheck.analyze(model, "7:int64")
    assert changes(before, fingerprint(model)) == []


@pytest.mark.parametrize("pattern", CLEAN)
def test_assert_shapes_leaves_the_model_as_it_was(pattern: str) -> None:
    make, spec = PATTERNS[pattern]
    model = make()
    before, twin = fingerprint(model), copy_of(model, make)
    shapecheck.assert_shapes(model, spec)
    assert_untouched(model, before, twin, spec)


@pytest.fixture(params=CLEAN)
def model_and_print(request: pytest.FixtureRequest) -> tuple[nn.Module, dict[str, Any], nn.Module, str]:
    make, spec = PATTERNS[request.param]
    model = make()
    return model, fingerprint(model), copy_of(model, make), spec, make


@pytest.fixture
def model(model_and_print: tuple) -> nn.Module:
    return model_and_print[0]


@pytest.mark.shapecheck(input="3x8x8")
@pytest.mark.parametrize("model_and_print", ["shared stem", "frozen parameters", "recording hook",
                                             "BatchNorm in train mode"], indirect=True)
def test_the_pytest_marker_leaves_the_model_as_it_was(model: nn.Module, model_and_print: tuple) -> None:
    # The marker's check ran before this body, on the same fixture value.
    _, before, twin, spec, _ = model_and_print
    assert_untouched(model, before, twin, spec)


def test_snapshots_leave_the_model_as_it_was(model_and_print: tuple, tmp_path: Path) -> None:
    model, before, twin, spec, _ = model_and_print
    ShapeSnapshot(tmp_path, "snap", update=True).assert_match(model, spec)
    ShapeSnapshot(tmp_path, "snap", update=False).assert_match(model, spec)
    assert_untouched(model, before, twin, spec)


def test_checkpoint_reconciliation_leaves_the_model_as_it_was(model_and_print: tuple, tmp_path: Path) -> None:
    model, before, twin, spec, make = model_and_print
    trained = make()
    with torch.no_grad():
        trained(real_input(spec))  # lazy layers get their sizes, as a trained checkpoint has them
    shapecheck.analyze(model, spec, checkpoint=trained.state_dict())
    assert_untouched(model, before, twin, spec)


@pytest.mark.parametrize("pattern", ["shared stem", "BatchNorm in train mode", "frozen parameters"])
def test_sizes_and_its_checking_forwards_leave_the_model_as_it_was(pattern: str) -> None:
    make, spec = PATTERNS[pattern]
    model = make()
    before, twin = fingerprint(model), copy_of(model, make)
    solver = Solver(model, [parse_input(spec)], (3, None, None), mode="train")
    assert solver.solve(1, 64).accepted
    solver.sweep(4, 12)  # the forward sweep, on the meta twin
    assert_untouched(model, before, twin, spec)


def test_the_meta_twin_shares_no_table_or_container_with_the_model() -> None:
    from shapecheck.lazy import meta_twin

    model = stateful.Recorded()
    twin = meta_twin(model, "eval")
    for mine, its in zip(model.modules(), twin.modules()):
        for key, value in vars(mine).items():
            if isinstance(value, list | dict | set):
                assert vars(its)[key] is not value, key


CLI_ARGS = {
    "table": [],
    "explain": ["--explain", "--show-source"],
    "json": ["--format", "json"],
    "html": ["--format", "html"],
    "diff": ["--diff"],
    "fix": ["--fix"],
}


@pytest.mark.parametrize("how", CLI_ARGS)
@pytest.mark.parametrize("pattern", ["shared stem", "cached mask", "created attribute", "parametrized and spectral norm"])
def test_every_cli_mode_leaves_the_model_instance_as_it_was(pattern: str, how: str, in_repo: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    # file.py:name, where name is a model instance: analyzed as it is, in this process.
    name, (make, spec) = stateful.instance_name(pattern), PATTERNS[pattern]
    model = getattr(stateful, name)
    before, twin = fingerprint(model), copy_of(model, make)
    code = cli.main([f"tests.fixtures.stateful:{name}", "--input", spec, *CLI_ARGS[how]])
    assert code == 0, capsys.readouterr()
    assert_untouched(model, before, twin, spec)


def test_the_sizes_command_leaves_the_model_instance_as_it_was(in_repo: Path, capsys: pytest.CaptureFixture) -> None:
    name = stateful.instance_name("shared stem")
    model = getattr(stateful, name)
    before = fingerprint(model)
    assert cli.main(["sizes", f"tests.fixtures.stateful:{name}", "--input", "3xHxW", "--range", "1..32"]) == 0
    assert changes(before, fingerprint(model)) == []


def test_project_mode_leaves_the_model_instances_as_they_were(in_repo: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture) -> None:
    entries = "".join(f'[[tool.shapecheck.models]]\ntarget = "tests.fixtures.stateful:{stateful.instance_name(p)}"\n'
                      f'input = "{PATTERNS[p][1]}"\n' for p in CLEAN)
    (tmp_path / "pyproject.toml").write_text(entries)
    models = [getattr(stateful, stateful.instance_name(p)) for p in CLEAN]
    before = [fingerprint(m) for m in models]
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(in_repo))
    assert cli.main(["project", "--format", "json"]) == 0, capsys.readouterr()
    assert len(json.loads(capsys.readouterr().out)) == len(CLEAN)
    assert [changes(b, fingerprint(m)) for b, m in zip(before, models)] == [[]] * len(CLEAN)


def test_the_html_view_reads_only_the_report() -> None:
    model = stateful.cached_mask()
    before = fingerprint(model)
    report = shapecheck.analyze(model, "7:int64")
    assert "<script" in report._repr_html_()
    assert changes(before, fingerprint(model)) == []


# -- generated models: the patterns above, mixed -------------------------------------------
class _Cache(nn.Module):
    """Keeps its last input, fills a None mask, appends to a list, registers a buffer late."""

    def __init__(self) -> None:
        super().__init__()
        self.mask = None
        self.seen: list[Any] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.last = x.detach()
        if self.mask is None:
            self.mask = torch.ones(x.shape[-1], device=x.device)
        self.seen.append(x.shape)
        if "late" not in self._buffers:
            self.register_buffer("late", torch.zeros(1, device=x.device))
        return x * self.mask


class _Counting(nn.Module):
    """A step counter and an EMA buffer in train mode, a plain tensor bumped on real data."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("ema", torch.zeros(8))
        self.plain = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.step += 1
            self.ema.mul_(0.5).add_(x.detach().mean(0))
        if not x.is_meta:
            self.plain += 1
        return x + self.ema


def _linear(kind: str) -> nn.Module:
    layer = nn.Linear(8, 8)
    if kind == "parametrized":
        torch.nn.utils.parametrize.register_parametrization(layer, "weight", stateful.Symmetric())
    elif kind == "spectral":
        layer = nn.utils.spectral_norm(layer)
    elif kind == "frozen":
        layer.requires_grad_(False)
    elif kind == "hooked":
        layer.register_forward_hook(lambda m, a, out: out * 0.5)
    return layer


BLOCKS = ["plain", "parametrized", "spectral", "frozen", "hooked", "cache", "counting", "batchnorm"]


class _Mixed(nn.Module):
    def __init__(self, kinds: list[str], shared: list[int], tied: list[tuple[int, int]]) -> None:
        super().__init__()
        made = [_Cache() if k == "cache" else _Counting() if k == "counting"
                else nn.BatchNorm1d(8) if k == "batchnorm" else _linear(k) for k in kinds]
        self.blocks = nn.ModuleList([*made, *(made[i % len(made)] for i in shared)])  # registered twice
        plain = [m for m in made if type(m) is nn.Linear and "weight" in m._parameters]
        for a, b in tied:
            if plain:
                plain[b % len(plain)].weight = plain[a % len(plain)].weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


@st.composite
def mixed_models(draw: st.DrawFn) -> tuple[nn.Module, str]:
    kinds = draw(st.lists(st.sampled_from(BLOCKS), min_size=1, max_size=6))
    shared = draw(st.lists(st.integers(0, 5), max_size=2))
    tied = draw(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), max_size=2))
    torch.manual_seed(draw(st.integers(0, 2**16)))
    model = _Mixed(kinds, shared, tied).train(draw(st.booleans()))
    out = model(torch.randn(4, 8))
    if draw(st.booleans()) and out.requires_grad:  # gradients from a step already taken
        out.sum().backward()
    with torch.no_grad():  # no graph left in the attributes (spectral_norm's weight), so a deep copy can be made
        model(torch.randn(4, 8))
    for block in model.modules():
        if isinstance(block, _Cache) and draw(st.booleans()):
            block.mask = None  # as made, before any forward
    return model, draw(st.sampled_from(["eval", "train", "same"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_models())
def test_generated_models_with_every_pattern_mixed_are_left_as_they_were(drawn: tuple[nn.Module, str]) -> None:
    model, mode = drawn
    before, twin = fingerprint(model), copy.deepcopy(model)
    shapecheck.analyze(model, "8", mode=mode)
    assert_untouched(model, before, twin, "8")


# -- zoos nobody here wrote: a CI sample of benchmarks/untouched.py -----------------------
def _zoo_model(source: str, name: str) -> tuple[nn.Module, str]:
    torch.manual_seed(0)
    if source == "torchvision":
        import torchvision.models as tv

        return tv.get_model(name, weights=None, **({"weights_backbone": None} if "rcnn" in name else {})), \
            "[3x320x320]" if "rcnn" in name else "3x64x64"
    if source == "timm":
        import timm

        model = timm.create_model(name, pretrained=False)
        return model, "x".join(map(str, model.pretrained_cfg.get("input_size", (3, 224, 224))))
    from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

    if name == "bert":
        return BertModel(BertConfig(hidden_size=64, num_attention_heads=4, intermediate_size=128,
                                    num_hidden_layers=2)), "16:int64"
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=4)), "16:int64"


ZOO_SAMPLE = [("torchvision", "resnet18"), ("torchvision", "mobilenet_v3_small"), ("torchvision", "squeezenet1_0"),
              ("torchvision", "fasterrcnn_mobilenet_v3_large_320_fpn"), ("timm", "efficientnet_b0"),
              ("timm", "convnext_atto"), ("timm", "vit_tiny_patch16_224"), ("timm", "resnest14d"),
              ("hf", "bert"), ("hf", "gpt2")]


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on the GPU machine)")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize(("source", "name"), ZOO_SAMPLE)
def test_real_weight_models_from_the_zoos_are_left_as_they_were(source: str, name: str, device: str) -> None:
    model, spec = _zoo_model(source, name)
    model.to(device)
    first = next(model.parameters())
    first.grad = torch.ones_like(first)  # as after a training step
    before = fingerprint(model)
    for mode in ("eval", "train"):
        shapecheck.analyze(model, spec, mode=mode, batch=1)
    assert changes(before, fingerprint(model)) == []


# -- on a GPU: the device is part of the state -------------------------------------------
@CUDA
@pytest.mark.parametrize("pattern", [p for p in PATTERNS if p != "lazy layers"])
def test_a_model_on_the_gpu_stays_there_untouched(pattern: str) -> None:
    make, spec = PATTERNS[pattern]
    model = make().cuda()
    before, twin = fingerprint(model), copy.deepcopy(model)
    for mode in ("eval", "train"):
        shapecheck.analyze(model, spec, mode=mode)
    shapecheck.analyze(model, real_input(spec).cuda(), mode="train")
    assert changes(before, fingerprint(model)) == []
    assert all(t.is_cuda for t in (*model.parameters(), *model.buffers()))
    x = real_input(spec).cuda()
    with torch.no_grad():
        try:
            expected = twin(x)
        except Exception as exc:  # noqa: BLE001 - the broken model: both must fail alike
            with pytest.raises(type(exc)):
                model(x)
            return
        assert torch.equal(model(x), expected)


def test_the_value_reading_path_leaves_the_environment_as_found(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import subprocess
    import sys

    # In a fresh interpreter: this one may have imported torch._dynamo already.
    code = ("import os, shapecheck\nfrom tests.test_trace import ValueBranch\nbefore = dict(os.environ)\n"
            "assert shapecheck.analyze(ValueBranch(), '4', mode='train').device == 'cpu'\n"
            "print(sorted(k for k in os.environ if os.environ[k] != before.get(k)))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCH")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "[]", out.stderr


class _CountsEveryCall(nn.Module):
    """Bumps a plain tensor on every call, on any device: the sizes solver's meta twin shares it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.calls = torch.zeros((), dtype=torch.long)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.conv(x)


def test_the_sizes_solver_puts_back_what_its_twin_forwards_write() -> None:
    model = _CountsEveryCall()
    before = fingerprint(model)
    solver = Solver(model, [parse_input("3x8x8")], (3, None, None))
    solver.sweep(3, 12)
    solver.solve(1, 64)
    assert changes(before, fingerprint(model)) == []
    assert int(model.calls) == 0
