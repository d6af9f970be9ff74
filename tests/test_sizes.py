"""The sizes solver, --explain's arithmetic and receptive field, checked against real forward passes."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import shapecheck
from shapecheck.arithmetic import Window
from shapecheck.cli import main
from shapecheck.explain import steps
from shapecheck.sizes import Solver
from shapecheck.spec import parse_input

ROOT = Path(__file__).parent.parent


def _load(relative: str, name: str) -> nn.Module:
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(f"sizes_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return getattr(module, name)().eval()


def _runs(model: nn.Module, size: int) -> bool:
    """The brute-force answer: a real CPU forward of one sample that keeps one output row."""
    try:
        with torch.no_grad():
            out = model(torch.randn(1, 3, size, size))
    except RuntimeError:
        return False
    return out.shape[0] == 1


@pytest.mark.parametrize("relative, name", [
    ("examples/quiz_a.py", "Net"), ("examples/quiz_b.py", "Net"), ("examples/quiz_c.py", "Net"),
    ("examples/simple_cnn.py", "SimpleCNN"), ("examples/folded_batch.py", "Net"),
    ("tests/fixtures/rules/clean_resnet.py", "Net"),
])
def test_accepted_sizes_equal_a_real_forward_at_every_size(relative, name):
    model = _load(relative, name)
    result = Solver(model, [parse_input("3x8x8")]).sweep(4, 80)
    assert result.accepted == tuple(s for s in range(4, 81) if _runs(model, s))


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["conv", "max", "avg"]), kernel=st.integers(1, 6), stride=st.integers(1, 4),
       padding=st.integers(0, 3), dilation=st.integers(1, 2), size=st.integers(1, 40))
def test_dropped_pixels_are_exactly_the_rows_no_window_reads(kind, kernel, stride, padding, dilation, size):
    if kind != "conv":
        dilation = 1
    if padding > kernel // 2 or (size + 2 * padding) < dilation * (kernel - 1) + 1:
        return  # PyTorch rejects these windows
    layer = {"conv": lambda: nn.Conv2d(1, 1, kernel, stride, padding, dilation, bias=False),
             "max": lambda: nn.MaxPool2d(kernel, stride, padding),
             "avg": lambda: nn.AvgPool2d(kernel, stride, padding)}[kind]()
    if kind == "conv":
        nn.init.uniform_(layer.weight, 0.5, 1.0)  # no cancellation: every read pixel moves the output
    x = torch.rand(1, 1, size, size)
    poked = x.clone()
    poked[..., -1, :] += 1000.0
    with torch.no_grad():
        unread = torch.equal(layer(x), layer(poked))
    window = Window(kernel, stride, padding, dilation)
    assert window.out(size) == layer(x).shape[-1]
    if window.dropped(size):
        assert unread
    elif dilation == 1 and window.span >= stride:
        # (Dilation leaves holes inside a window, and a window smaller than its stride skips
        # pixels between windows; neither is the border loss this counts.)
        assert not unread


def test_receptive_field_equals_the_reach_of_one_output_pixel():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 5), nn.AvgPool2d(2), nn.Conv2d(2, 2, 3, padding=1, dilation=2),
                          nn.AvgPool2d(3, 2), nn.Conv2d(2, 1, 3))
    for conv in (m for m in model if isinstance(m, nn.Conv2d)):
        nn.init.uniform_(conv.weight, 0.5, 1.0)
    x = torch.rand(1, 1, 64, 64, requires_grad=True)
    out = model(x)
    out[0, 0, out.shape[-2] // 2, out.shape[-1] // 2].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten()
    last = steps(shapecheck.analyze(model, "1x64x64"))[-1]
    assert last.receptive_field == int(rows.max() - rows.min() + 1)
    assert last.stride == 4


def test_explain_prints_the_course_notation(in_repo, capsys):
    assert main(["examples/quiz_a.py:Net", "--input", "3x64x64", "--explain"]) == 0
    out = capsys.readouterr().out
    for line in [
        "conv1 Conv2d(k=5, s=1, p=0): 64 -> floor((64 + 2*0 - 5) / 1) + 1 = 60",
        "pool MaxPool2d(2): 60 -> floor(60 / 2) = 30",
        "conv2 Conv2d(k=5, s=1, p=0): 30 -> floor((30 + 2*0 - 5) / 1) + 1 = 26",
        "pool MaxPool2d(2): 26 -> floor(26 / 2) = 13",
        "view: 20 x 13 x 13 = 3380",
        "fc1 Linear: 3380 (20 * 13 * 13) -> 50 features",
    ]:
        assert line in out
    assert "RF 5, stride 1" in out and "RF 16, stride 4" in out


def test_sizes_command_answers_the_quiz(in_repo, capsys):
    assert main(["sizes", "examples/quiz_a.py:Net", "--input", "3xHxW"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Net: input 3xHxW, H, W from 1 to 4096"
    assert lines[1].startswith("how: the size algebra of one trace, checked by 6 forward passes on meta at the "
                               "accepted set's edges and inside and outside it (63, 64, 66, 67, 68, ")
    assert lines[2:] == [
        "accepted: H, W in {64, 65, 66, 67}", "minimum input: 3x64x64", "no pixels lost: {64}",
        "lose pixels to floor division:",
        "  65: pool 61x61 -> 30x30 drops 1 row and 1 column",
        "  66: pool 27x27 -> 13x13 drops 1 row and 1 column",
        "  67: pool 63x63 -> 31x31 drops 1 row and 1 column; pool 27x27 -> 13x13 drops 1 row and 1 column"]


def test_sizes_command_says_any_size_for_adaptive_pooling(in_repo, capsys):
    assert main(["sizes", "tests/fixtures/rules/clean_resnet.py:Net", "--input", "3xHxW", "--range", "1..64"]) == 0
    assert "accepted: any size (every size up to 64 runs)" in capsys.readouterr().out


def test_sizes_command_needs_letters(in_repo, capsys):
    assert main(["sizes", "examples/quiz_a.py:Net", "--input", "3x64x64"]) == 2
    assert "mark the sizes to sweep with letters" in capsys.readouterr().err


def _fixture(relative: str) -> tuple[nn.Module, str]:
    """A fixture model and the input its header names (``# fixture: input=3x30x30``)."""
    header = (ROOT / relative).read_text().splitlines()[0]
    shape = header.partition("input=")[2].split()[0] if "input=" in header else "3x64x64"
    classes = {"tests/fixtures/unet_helper.py": "UNet", "examples/unet.py": "UNet", "examples/simple_cnn.py": "SimpleCNN"}
    return _load(relative, classes.get(relative, "Net")), shape


ALGEBRA_SAMPLE = [
    "examples/quiz_a.py", "examples/quiz_c.py", "examples/quiz_d.py", "examples/simple_cnn.py",
    "examples/folded_batch.py", "tests/fixtures/unet_helper.py", "tests/fixtures/rules/clean_resnet.py",
    "tests/fixtures/rules/dropped_pixels.py",
    "tests/fixtures/rules/clean_transposed_unet.py", "tests/fixtures/rules/decoder_off_by.py",
    "tests/fixtures/rules/input_too_small.py", "tests/fixtures/rules/flattened_linear.py",
]


@pytest.mark.parametrize("relative", ALGEBRA_SAMPLE)
def test_the_size_algebra_equals_a_forward_at_every_size(relative):
    """The algebra's answer over 1..96, accepted sizes and lost pixels, against a meta forward
    at each of those sizes. The full comparison is benchmarks/sizes_algebra.py."""
    model, shape = _fixture(relative)
    solver = Solver(model, [parse_input(shape)])
    answer = solver.solve(1, 96)
    truth = Solver(model, [parse_input(shape)]).sweep(1, 96)
    # A model that takes no size (folded_batch folds the batch at every one) is left to the
    # sweep: no edge of an empty set can check it.
    assert answer.method == "algebra" or answer.why_sweep == "it accepts no size", solver.unmodelled
    assert answer.accepted == truth.accepted
    assert answer.lossy == truth.lossy


def test_the_true_minimum_is_found_below_the_old_sweeps_floor(in_repo, capsys):
    """resnet18 takes a 1x1 image; the 16..512 sweep reported 16."""
    assert main(["sizes", "torchvision.models:resnet18", "--input", "3xHxW"]) == 0
    out = capsys.readouterr().out
    assert "accepted: any size (every size up to 4096 runs)" in out and "minimum input: 3x1x1" in out
    assert "how: the size algebra of one trace, checked by" in out


def test_a_unet_accepts_multiples_of_four_and_says_so(in_repo, capsys):
    assert main(["sizes", "tests/fixtures/unet_helper.py:UNet", "--input", "3xHxW", "--range", "1..512"]) == 0
    out = capsys.readouterr().out
    assert "accepted: H, W = 4 + 4k, every 4th size from 4 (the multiples of 4), up to 512" in out


class Sliced(nn.Module):
    """x[..., :16]: an index the algebra does not read."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x[..., :16, :16])


class Branching(nn.Module):
    """A Python branch on the size: one trace sees one side of it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 2)

    def forward(self, x):
        x = self.conv(x)
        if x.shape[-1] > 100:
            x = self.fc(x)  # only big maps go this way, and fail there: fc wants 4 columns
        return x


def test_an_op_outside_the_algebra_falls_back_to_the_sweep_and_says_which():
    solver = Solver(Sliced(), [parse_input("3x32x32")])
    answer = solver.solve(1, 40)
    assert answer.method == "sweep" and "getitem" in answer.why_sweep
    assert answer.accepted == tuple(range(3, 41)) == Solver(Sliced(), [parse_input("3x32x32")]).sweep(1, 40).accepted
    from shapecheck.render.sizes import render

    assert "(the size algebra could not serve: getitem ([]) is not in the size algebra)" in render(answer, "Sliced")


def test_an_answer_a_forward_contradicts_is_replaced_by_the_sweep():
    """The trace at 64 never sees the branch above 100; the forwards at the set's edges do."""
    from shapecheck.trace import trace

    spec = parse_input("3x64x64")
    solver = Solver(Branching(), [spec], traced=trace(Branching(), [spec], 1), batch=1)
    answer = solver.solve(1, 128)
    assert answer.method == "sweep" and answer.why_sweep.startswith("a forward at 3x")
    assert answer.accepted == Solver(Branching(), [spec]).sweep(1, 128).accepted


def test_an_analysis_traces_once_even_when_a_rule_asks_which_sizes_fit(monkeypatch):
    """SHP001's "2880 fits 3x60x60 to 3x63x63" comes from the algebra of the analysis' own trace."""
    from shapecheck import trace as tracing

    runs = []
    real = tracing._run
    monkeypatch.setattr(tracing, "_run", lambda *a, **k: runs.append(1) or real(*a, **k))
    report = shapecheck.analyze(_load("examples/quiz_c.py", "Net"), "3x64x64")
    assert any("2880 fits 3x60x60 to 3x63x63 inputs" in f.message for f in report.findings)
    assert len(runs) == 1


class FunctionalNorm(nn.Module):
    """timm's BatchNormAct2d: F.batch_norm with per-channel statistics, which do not
    broadcast against the map's last dimension."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, stride=2)
        self.register_buffer("mean", torch.zeros(16))
        self.register_buffer("var", torch.ones(16))

    def forward(self, x):
        return torch.nn.functional.batch_norm(self.conv(x), self.mean, self.var, training=False)


def test_a_functional_batch_norm_keeps_its_input_shape_in_the_algebra():
    spec = parse_input("3x32x32")
    solver = Solver(FunctionalNorm(), [spec])
    answer = solver.solve(1, 64)
    assert answer.method == "algebra", solver.unmodelled
    assert answer.accepted == Solver(FunctionalNorm(), [spec]).sweep(1, 64).accepted == tuple(range(3, 65))


def test_the_sweep_fallback_starts_where_the_range_starts():
    # An op outside the algebra (indexing): the sweep answers, from 1, not from 16.
    class Sliced(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.conv(x)[:, :, 1:]

    answer = Solver(Sliced(), [parse_input("3x32x32")], (3, None, None)).solve(1, 4096, fallback=(16, 512))
    assert answer.method == "sweep" and (answer.low, answer.high) == (1, 512) and answer.minimum == 3


def test_a_functional_average_pool_is_read_with_its_own_defaults(in_repo):
    """F.avg_pool2d(out, 4): avg_pool has no dilation, so its 4th parameter is ceil_mode; reading
    dilation's default there made every size pool to 1x1. The SHP001 hint and `sizes` now agree."""
    from shapecheck.target import build, parse_target

    model = build(parse_target("tests/fixtures/outside/cifar_resnet.py:ResNet")).model
    answer = Solver(model, [parse_input("3x32x32")], (3, None, None)).solve(1, 96)
    assert answer.method == "algebra" and answer.accepted == tuple(range(25, 57))
    assert answer.accepted == Solver(model, [parse_input("3x32x32")], (3, None, None)).sweep(1, 96).accepted
    report = shapecheck.analyze(model, "3x64x64")
    assert "512 fits 3x25x25 to 3x56x56 inputs" in report.errors[0].message
