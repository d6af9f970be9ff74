"""After a failing layer the trace goes on with what the layer would have produced if its
declared size matched what it received; where nothing correct exists it stops and says so.

The bug-injection property (tests/test_mutations.py) checks this on thousands of mutants
against real forwards; these are the issue's own cases, each readable on its own.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import shapecheck
from shapecheck.explain import steps
from shapecheck.verify import real_module_shapes


def _rows(report) -> dict[str, tuple]:
    return {layer.name: layer.output_shapes for layer in report.layers if layer.kind == "module"}


def test_surplus_channels_continue_with_the_layers_own_output():
    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.Conv2d(32, 32, 3, padding=1), nn.Flatten(),
                          nn.Linear(10, 5))
    report = shapecheck.analyze(model, "3x32x32")
    assert _rows(report)["1"] == ((2, 32, 32, 32),)  # not [2, 32, 64, 32]
    assert report.layer("3").input_shapes == ((2, 32 * 32 * 32),)
    repaired = nn.Sequential(model[0], nn.Conv2d(64, 32, 3, padding=1), nn.Flatten(), nn.Linear(32 * 32 * 32, 5))
    assert real_module_shapes(repaired, torch.randn(2, 3, 32, 32))["1"] == [((2, 32, 32, 32),)]


class Sequence(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(8, 16)
        self.lstm = nn.LSTM(20, 32, batch_first=True, bidirectional=True)
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
        self.head = nn.Linear(64, 5)

    def forward(self, x):
        x, _ = self.lstm(self.embed(x))
        y, _ = self.attn(x, x, x)
        return self.head(y[:, -1])


def test_rnn_and_attention_recover_and_name_both_numbers():
    report = shapecheck.analyze(Sequence(), "7x8")
    rows = _rows(report)
    assert rows["lstm"] == ((2, 7, 64), (2, 2, 32), (2, 2, 32))
    assert rows["attn"][0] == (2, 7, 64)  # declared for what it received, it keeps that width
    assert rows["head"] == ((2, 5),)
    messages = {f.layer: f.message for f in report.errors}
    assert "expects input_size=20 features per step but receives 16" in messages["lstm"]
    assert "expects embed_dim=16 but the query has 64 features" in messages["attn"]
    assert all(f.code == "SHP009" for f in report.errors)  # torch's assertion is a shape error, not SHP008


def test_float_indices_into_an_embedding_hint_an_integer_input():
    report = shapecheck.analyze(nn.Sequential(nn.Embedding(100, 8), nn.Flatten(), nn.Linear(56, 2)), "7")
    assert report.layer("0").output_shapes == ((2, 7, 8),)
    assert "--input 7:int64" in report.errors[0].message
    assert report.layer("2").input_shapes == ((2, 56),)


class Skip(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(8, 8, 2, stride=2)
        self.out = nn.Conv2d(11, 2, 1)

    def forward(self, x):
        return self.out(torch.cat([x, self.up(self.down(x))], dim=1))


def test_a_skip_that_cannot_be_joined_stops_the_trace_and_says_so():
    report = shapecheck.analyze(Skip(), "3x31x31")
    assert [layer.name for layer in report.layers] == ["Skip", "down", "up", "cat"]
    assert any("stopped at cat" in note for note in report.notes)
    assert report.errors[0].code == "SHP009"


def test_transposed_convolutions_have_their_own_arithmetic():
    report = shapecheck.analyze(Skip(), "3x32x32", select=["SHP1"])
    assert report.findings == ()  # 16 -> 32 reads every pixel: no SHP101
    text = next(s.text for s in steps(report) if s.layer == "up")
    assert text == "up ConvTranspose2d(2): 16 -> (16 - 1)*2 - 2*0 + 1 + 0 + 1 = 32"


def test_dropped_pixels_advice_fits_the_layer_and_pool_advice_fits_the_dimension():
    conv = shapecheck.analyze(nn.Conv2d(3, 4, 3, stride=2), "3x64x64", select=["SHP101"])
    assert "use padding, or" in conv.findings[0].message and "ceil_mode" not in conv.findings[0].message
    pool = shapecheck.analyze(nn.MaxPool2d(2), "3x65x65", select=["SHP101"])
    assert "ceil_mode=True" in pool.findings[0].message
    volume = nn.Sequential(nn.Conv3d(1, 8, 3), nn.Flatten(), nn.Linear(8 * 14 * 14 * 14, 2))
    report = shapecheck.analyze(volume, "1x16x16x16", select=["SHP105", "SHP106"])
    assert report.findings and all("AdaptiveAvgPool3d" in f.message for f in report.findings)


def test_an_index_error_inside_torch_is_a_shape_finding():
    class Flat(nn.Module):
        def forward(self, x):
            return F.relu(x).flatten(2)

    report = shapecheck.analyze(Flat(), "16")
    assert [f.code for f in report.errors] == ["SHP009"]
    assert "starts at dimension 2 but [2, 16] has only 2 dimensions" in report.errors[0].message


def test_a_missing_channel_dimension_is_named_with_the_spec_that_adds_it():
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Flatten(), nn.Linear(8 * 26 * 26, 10))
    report = shapecheck.analyze(model, "28x28")
    message = report.errors[0].message
    assert "the channel dimension is missing" in message
    assert "--input 1x28x28" in message and "x.unsqueeze(1)" in message
    assert shapecheck.analyze(model, "1x28x28").ok


def test_a_linear_on_an_unflattened_map_says_flatten_and_never_miscounts():
    class Unflat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 32, 3), nn.Linear(32 * 12 * 12, 10)

        def forward(self, x):
            return self.fc(self.conv(x))

    finding = shapecheck.analyze(Unflat(), "3x14x14").errors[0]
    assert "receives the unflattened map [2, 32, 12, 12] from conv" in finding.message
    assert "flatten it first with x.flatten(1), giving 32x12x12 = 4608 features" in finding.message
    assert "= 32x12x12" not in finding.message.split("giving")[0]  # no "12 = 32x12x12"
    assert finding.fix is None and finding.hint == "x.flatten(1)"


def test_a_skip_join_names_both_branches_and_the_sizes_that_work():
    finding = shapecheck.analyze(Skip(), "3x31x31").errors[0]
    assert "torch.cat of the input [2, 3, 31, 31], up [2, 8, 32, 32]" in finding.message
    assert "multiples of 2 work; the nearest that run are 3x30x30 and 3x32x32" in finding.message


def test_back_solve_hints_only_where_the_width_follows_the_input():
    pooled = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2))
    message = shapecheck.analyze(pooled, "3x32x32").errors[0].message
    assert "fits" not in message  # adaptive pooling: no input size would give 16
    spatial = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 28 * 28, 2))
    assert "fits 3x30x30 inputs" in shapecheck.analyze(spatial, "3x32x32").errors[0].message


def test_an_expression_that_is_not_the_number_is_not_shown_as_if_it_were():
    class Helper(nn.Module):
        def __init__(self, width: int = 8193) -> None:
            super().__init__()
            self.fc = nn.Linear(width, 2)

        def forward(self, x):
            return self.fc(x)

    message = shapecheck.analyze(Helper(), "16").errors[0].message
    assert "expects in_features=8193 but receives 16" in message


def test_an_rnns_wrong_hidden_state_is_explained_and_the_trace_goes_on():
    class Hidden(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm, self.head = nn.LSTM(16, 32, batch_first=True), nn.Linear(32, 4)

        def forward(self, x):
            h0 = torch.zeros(1, 8, 32)  # a batch of 8 written into the model
            out, _ = self.lstm(x, (h0, h0))
            return self.head(out[:, -1])

    report = shapecheck.analyze(Hidden(), "10x16")
    assert report.layer("lstm").output_shapes[0] == (2, 10, 32) and report.outputs == ((2, 4),)
    message = report.errors[0].message
    assert "initial hidden state must be [num_layers * directions, 2, 32]" in message
    assert "but is [1, 8, 32], [1, 8, 32]" in message


def test_functional_matmul_and_linear_recover_with_the_declared_inner_size():
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.empty(10, 12))  # F.linear: 12 in, 10 out
            self.proj = nn.Parameter(torch.empty(9, 6))  # matmul: 9 in, 6 out
            self.head = nn.Linear(6, 2)

        def forward(self, x):
            y = F.linear(x, self.w)  # x has 16 features
            z = y @ self.proj  # y has 10, not 9
            return self.head(z)

    report = shapecheck.analyze(Functional(), "16")
    rows = {layer.name: layer.output_shapes for layer in report.layers}
    assert rows["linear"] == ((2, 10),) and rows["matmul"] == ((2, 6),) and rows["head"] == ((2, 2),)
    assert [f.code for f in report.errors] == ["SHP009", "SHP009"]


def test_an_instance_norm_with_other_channels_keeps_its_input_shape():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.InstanceNorm2d(4, affine=True), nn.Conv2d(8, 2, 1))
    report = shapecheck.analyze(model, "3x16x16")
    assert report.layer("1").output_shapes == ((2, 8, 14, 14),) and report.outputs == ((2, 2, 14, 14),)
    assert [f.code for f in report.errors] == ["SHP002"]
