"""The trace itself: functional rows, several inputs, dtypes, 1-D and 3-D convs, CPU fallback."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import shapecheck
from shapecheck.verify import unique_params


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        y = torch.cat([F.relu(self.a(x)), self.b(x)], dim=1)
        y = y + y
        y = y.reshape(y.shape[0], -1)
        return self.fc(torch.flatten(y, 1))


def test_functional_ops_get_rows_with_the_forward_line():
    report = shapecheck.analyze(Functional(), "3x8x8")
    rows = [(l.type, l.output_shapes) for l in report.layers if l.kind == "function"]
    assert rows == [
        ("F.relu", ((2, 4, 8, 8),)),
        ("torch.cat", ((2, 8, 8, 8),)),
        ("Tensor.add", ((2, 8, 8, 8),)),
        ("Tensor.reshape", ((2, 512),)),
        ("torch.flatten", ((2, 512),)),
    ]
    cat = next(l for l in report.layers if l.type == "torch.cat")
    assert cat.called_at.path.endswith("test_trace.py")
    assert cat.input_shapes == ((2, 4, 8, 8), (2, 4, 8, 8))
    source = open(__file__).read().splitlines()[cat.called_at.line - 1]
    assert "torch.cat" in source


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 16)
        self.proj = nn.Linear(8, 16)

    def forward(self, tokens, features):
        return self.embed(tokens).mean(1) + self.proj(features)


def test_several_inputs_and_integer_dtype():
    report = shapecheck.analyze(TwoInputs(), ["12:int64", "8"], batch=3)
    assert report.errors == ()
    assert report.outputs == ((3, 16),)
    assert report.layer("embed").input_shapes == ((3, 12),)


def test_conv1d_audio_and_conv3d_video():
    audio = nn.Sequential(nn.Conv1d(1, 8, 80, stride=16), nn.ReLU(), nn.MaxPool1d(4),
                          nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, 5))
    report = shapecheck.analyze(audio, "1x16000")
    assert report.outputs == ((2, 5),)
    assert report.layer("0").output_shapes == ((2, 8, 996),)
    video = nn.Sequential(nn.Conv3d(3, 4, 3), nn.MaxPool3d(2))
    assert shapecheck.analyze(video, "3x8x32x32").outputs == ((2, 4, 3, 15, 15),)


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.out = nn.Linear(8, 50, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, x):
        return self.out(self.embed(x))


def test_tied_weights_are_counted_once():
    model = Tied()
    report = shapecheck.analyze(model, "4:int64")
    assert report.totals.params == 400 == unique_params(model)


class ValueBranch(nn.Module):
    """A forward that reads tensor values, which the meta device cannot provide."""

    def __init__(self) -> None:
        super().__init__()
        self.small = nn.Linear(4, 2)
        self.large = nn.Linear(4, 3)

    def forward(self, x):
        return self.small(x) if x.abs().sum() < 0 else self.large(x)


def test_value_dependent_forward_falls_back_to_cpu():
    report = shapecheck.analyze(ValueBranch(), "4")
    assert report.device == "cpu"
    assert report.outputs == ((2, 3),)
    assert report.notes


def test_meta_model_built_under_torch_device_meta():
    with torch.device("meta"):
        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))
    report = shapecheck.analyze(model, "3x32x32")
    assert report.errors == () and report.outputs == ((2, 10),)
    assert report.totals.params == unique_params(model)


def test_macs_are_counted_per_layer():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    report = shapecheck.analyze(model, "3x8x8", batch=1)
    assert report.layer("0").macs == 8 * 6 * 6 * 3 * 3 * 3
    assert report.layer("2").macs == 8 * 6 * 6 * 10
    assert report.totals.macs == report.layer("0").macs + report.layer("2").macs


class MakesTensors(nn.Module):
    """A forward that creates tensors without naming a device, as positional encodings do."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        position = torch.arange(x.shape[1]).float()
        mask = torch.ones(x.shape[1], x.shape[1]).tril()
        return self.fc(x + position) @ mask + torch.zeros(8, device=None)


def test_tensors_made_in_forward_are_on_the_trace_device():
    report = shapecheck.analyze(MakesTensors(), "8")
    assert report.device == "meta" and report.errors == ()
    assert report.outputs == ((2, 8),)
    assert [l.type for l in report.layers if l.kind == "function"][:2] == ["torch.arange", "torch.ones"]


class Halves(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return self.fc(x * 0.5)  # an integer tensor times a float: the default dtype


def test_the_shared_memo_keeps_default_dtypes_apart():
    assert shapecheck.analyze(Halves(), "8:int64").errors == ()
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        # A float32 record of the same multiplication must not be replayed here.
        report = shapecheck.analyze(Halves().double(), "8:int64")
        assert report.layer("mul").output_bytes == 2 * 8 * 8  # [2, 8] in float64
    finally:
        torch.set_default_dtype(before)


def test_a_hooked_torch_layer_is_traced_with_its_hook():
    """Plain torch.nn layers skip the function mode, but a hook is the user's code and is traced."""
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    model[0].register_forward_hook(lambda module, args, out: out + torch.ones(4))
    report = shapecheck.analyze(model, "4")
    assert report.device == "meta" and report.errors == ()
    assert [(l.name, l.parent) for l in report.layers if l.kind == "function"] == [("ones", "0"), ("add", "0")]


class Scales(nn.Module):
    def forward(self, x):
        return x * 2, x * 2.0, x * True


def test_equal_numbers_of_different_types_are_different_ops():
    # x * 2 stays int64, x * 2.0 is float32, x * True stays int64: 2 x 4 elements each.
    report = shapecheck.analyze(Scales(), "4:int64")
    assert [l.output_bytes for l in report.layers if l.name == "mul"] == [64, 32, 64]


class MakesCpuTensors(nn.Module):
    def __init__(self, cpu_first: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.cpu_first = cpu_first

    def forward(self, x):
        cpu = torch.ones(4, device="cpu")  # a device named outright
        return cpu * self.fc(x) if self.cpu_first else self.fc(x) * cpu


@pytest.mark.parametrize("cpu_first", [False, True])
def test_a_forward_that_names_the_cpu_runs_on_cpu(cpu_first):
    for _ in range(2):  # the second time too: the kernel memo must not replay the CPU tensor on meta
        report = shapecheck.analyze(MakesCpuTensors(cpu_first), "4")
        assert report.device == "cpu" and report.errors == ()
        assert report.outputs == ((2, 4),)


def test_paths_are_relative_to_the_working_directory_of_each_analysis(in_repo, monkeypatch):
    from shapecheck.target import build, parse_target

    model = build(parse_target("examples/quiz_c.py:Net")).model
    first = shapecheck.analyze(model, "3x64x64")
    monkeypatch.chdir("examples")
    second = shapecheck.analyze(model, "3x64x64")
    assert (first.layer("fc1").defined_at.path, first.errors[0].location.path) == ("examples/quiz_c.py",) * 2
    assert (second.layer("fc1").defined_at.path, second.errors[0].location.path) == ("quiz_c.py",) * 2


def test_flop_counts_equal_torchs_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.Flatten(),
                          nn.Linear(8 * 7 * 7, 10))
    mha = nn.MultiheadAttention(16, 4, batch_first=True)
    for module, spec, x in ((model, "3x16x16", torch.randn(2, 3, 16, 16)),
                            (mha, ["5x16"] * 3, None)):
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            module(x) if x is not None else module(*(torch.randn(2, 5, 16),) * 3)
        assert shapecheck.analyze(module, spec).totals.macs * 2 == counter.get_total_flops() > 0


@pytest.mark.parametrize("depth", [200, 225])  # 245 passes alone; pytest takes some of the stack
def test_a_deep_model_that_runs_in_pytorch_runs_under_shapecheck(depth):
    import sys

    model = nn.Linear(4, 4)
    for _ in range(depth):
        model = nn.Sequential(model)
    model(torch.randn(1, 4))  # plain PyTorch takes it
    limit = sys.getrecursionlimit()
    report = shapecheck.analyze(model, "4")
    assert report.findings == () and len(report.layers) == depth + 1
    assert sys.getrecursionlimit() == limit  # as found
