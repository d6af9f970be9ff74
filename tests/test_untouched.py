"""shapecheck never changes a user's model: weights, buffers, device, modes and hooks."""
from __future__ import annotations

import torch
from torch import nn

import shapecheck
from tests.test_trace import ValueBranch


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5),
                          nn.Flatten(), nn.Linear(8 * 6 * 6, 4))
    model[1].running_mean.uniform_()
    model[1].num_batches_tracked.fill_(7)
    model.train()
    model[3].eval()  # a mixed mode must come back mixed
    return model


def _state(model: nn.Module) -> dict:
    return {
        "tensors": {k: (v.clone(), v.device, v.dtype, v.requires_grad) for k, v in model.state_dict(keep_vars=True).items()},
        "ids": [id(p) for p in model.parameters()],
        "training": [m.training for m in model.modules()],
        "hooks": [(dict(m._forward_hooks), dict(m._forward_pre_hooks)) for m in model.modules()],
        "call": type(model).__call__,
    }


def _assert_same(before: dict, after: dict) -> None:
    assert before["ids"] == after["ids"]
    assert before["training"] == after["training"]
    assert before["hooks"] == after["hooks"]
    assert before["call"] is after["call"] is nn.Module.__call__
    for key, (value, device, dtype, grad) in before["tensors"].items():
        now, now_device, now_dtype, now_grad = after["tensors"][key]
        assert (device, dtype, grad) == (now_device, now_dtype, now_grad), key
        assert torch.equal(value, now), key


def test_analysis_leaves_weights_buffers_modes_and_hooks_as_they_were():
    model = _model()
    calls = []
    model[0].register_forward_hook(lambda *a: calls.append("hook"))
    before = _state(model)
    for mode in ("eval", "train", "same"):
        # SHP106's size probes would run the forward, and the hook, once more per size
        shapecheck.analyze(model, "3x8x8", mode=mode, ignore=["SHP106"])
    _assert_same(before, _state(model))
    assert calls == ["hook"] * 3  # the user's hook ran, and is still registered


def test_a_failing_trace_restores_everything_too():
    model = _model()
    before = _state(model)
    report = shapecheck.analyze(model, "3x9x9")  # fc sees 8x7x7
    assert [f.code for f in report.errors] == ["SHP001"]
    _assert_same(before, _state(model))


def test_cpu_fallback_leaves_the_model_untouched():
    model = ValueBranch()
    before = _state(model)
    assert shapecheck.analyze(model, "4", mode="train").device == "cpu"
    _assert_same(before, _state(model))


def test_gradients_are_not_touched():
    model = _model()
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    shapecheck.analyze(model, "3x8x8")
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))
