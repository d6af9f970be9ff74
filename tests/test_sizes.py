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
    assert lines[1].startswith("how: the size algebra of one trace, checked by 11 forward passes on meta at the "
                               "accepted set's edges and inside and outside it (1, 63, 64, 65, 66, 67, 68, ")
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
