"""A trace replays what it already ran: a torch.nn leaf, or a torch function the forward
calls, met again with the same configuration and input metadata. Each model here is
analyzed twice, so that the second analysis replays what the first recorded."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import shapecheck
from shapecheck.memo import Memo
from shapecheck.modelstate import module_tree
from shapecheck.verify import real_module_shapes, traced_module_shapes


def _twice(model: nn.Module, spec: str) -> shapecheck.Report:
    first = shapecheck.analyze(model, spec)
    second = shapecheck.analyze(model, spec)
    assert [(l.name, l.output_shapes, l.macs) for l in first.layers] == \
        [(l.name, l.output_shapes, l.macs) for l in second.layers]
    return second


class Configs(nn.Module):
    """Leaves of one class, weights and input that differ only in stride, padding or dilation."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(4, 4, 3, stride=s, padding=p, dilation=d)
                                   for s, p, d in [(1, 1, 1), (2, 1, 1), (1, 0, 1), (1, 2, 2)])
        self.pool = nn.MaxPool2d(2)
        self.ceil = nn.MaxPool2d(2, ceil_mode=True)

    def forward(self, x):
        outs = [conv(x) for conv in self.convs]
        return [*outs, self.pool(x), self.ceil(x), self.convs[0](x)]


def test_leaves_that_differ_only_in_configuration_are_not_confused():
    model = Configs()
    report = _twice(model, "4x9x9")
    assert traced_module_shapes(report) == real_module_shapes(model, torch.randn(2, 4, 9, 9))
    assert [s[2:] for s in report.outputs] == [(9, 9), (5, 5), (7, 7), (9, 9), (4, 4), (5, 5), (9, 9)]


def test_a_replayed_call_counts_its_macs_again():
    model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, bias=False), nn.Conv2d(3, 3, 3, padding=1, bias=False))
    report = _twice(model, "3x8x8")
    assert report.layer("0").macs == report.layer("1").macs == 2 * 3 * 8 * 8 * 3 * 3 * 3  # batch 2
    assert report.totals.macs == 2 * report.layer("0").macs


class InPlaceShapes(nn.Module):
    """unsqueeze_ changes its input's shape in place: a replay must not skip it."""

    def forward(self, x):
        a = x.clone()
        a.unsqueeze_(0)
        b = x.clone()
        b.unsqueeze_(0)
        return a, b


def test_a_function_that_writes_in_place_always_runs():
    report = _twice(InPlaceShapes(), "4")
    assert report.outputs == ((1, 2, 4), (1, 2, 4))
    assert Memo().call_key(torch.Tensor.unsqueeze_, (torch.empty(2, device="meta"), 0), {}) is None
    assert Memo().call_key(torch.Tensor.__iadd__, (torch.empty(2, device="meta"), 1), {}) is None
    assert Memo().call_key(torch.Tensor.__add__, (torch.empty(2, device="meta"), 1), {}) is not None


class InPlaceValues(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.block = nn.Sequential(nn.ReLU(inplace=True), nn.Identity(), nn.Dropout())

    def forward(self, x):
        y = self.block(self.fc(x))
        return F.relu(y, inplace=True).flatten(1)


def test_a_call_that_returned_its_input_replays_as_that_input():
    report = _twice(InPlaceValues(), "4")
    # Each row reads what the row before it produced: the input itself came back each time.
    sources = {l.name: l.input_sources for l in report.layers}
    index = {l.name: l.index for l in report.layers}
    assert sources["block.1"] == (index["block.0"],) and sources["flatten"] == (index["relu"],)
    memo, x, y = Memo(), torch.empty(2, device="meta"), torch.empty(2, device="meta")
    memo.store(("key",), (x, torch.empty(3, device="meta")), 0, [x])
    out, _ = memo.replay(("key",), [y])
    assert out[0] is y and out[1].shape == (3,)


class Frozen(nn.Module):
    """Its train() keeps the norm in eval mode, as fine-tuning code does."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(4)

    def train(self, mode: bool = True) -> Frozen:
        super().train(mode)
        self.norm.eval()
        return self

    def forward(self, x):
        return self.norm(x)


def test_a_class_that_overrides_train_decides_the_modes():
    model = Frozen()
    model.norm.training = True  # as it stands before the analysis, to be restored after
    seen: list[bool] = []  # outside the model: what a hook records there is the user's to keep
    model.register_forward_pre_hook(lambda module, args: seen.append(module.norm.training))
    shapecheck.analyze(model, "4", mode="train")
    assert seen == [False]
    assert model.training and model.norm.training


class Shares(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        shared = nn.Linear(2, 2)
        self.a = nn.Sequential(shared, nn.ReLU())
        self.b = shared
        self.c = self.a


def test_the_module_tree_is_named_modules_without_removing_duplicates():
    import torchvision.models as tv

    for model in (Shares(), tv.googlenet(init_weights=False, aux_logits=True)):
        assert module_tree(model) == list(model.named_modules(remove_duplicate=False))


class ReadsWeight(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.unused = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return F.linear(self.fc(x), self.head.weight, self.head.bias)


def test_a_meta_model_stands_in_for_itself_and_is_left_as_it_was():
    with torch.device("meta"):
        model = ReadsWeight()
    before = [(name, p, p.shape, p.requires_grad, p._version) for name, p in model.named_parameters()]
    report = _twice(model, "4")
    assert [(name, p, p.shape, p.requires_grad, p._version) for name, p in model.named_parameters()] == before
    assert [f.layer for f in report.findings if f.code == "SHP102"] == ["unused"]
    assert report.outputs == ((2, 2),)
