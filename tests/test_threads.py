"""shapecheck inside other people's processes: overlapping threads and nested calls leave
torch exactly as found, and never change what another thread's code does.

Every test makes the overlap certain with a barrier inside the running analysis or build,
so the other thread acts while shapecheck's switches are in place (shapecheck/patches.py).
"""
from __future__ import annotations

import gc
import threading

import torch
from torch import nn

import shapecheck
from shapecheck.target import construct

ORIGINAL_CALL = nn.Module.__call__
ORIGINAL_REGISTER = nn.Module.register_parameter
ORIGINAL_NORMAL = nn.init.normal_


def _untouched() -> None:
    assert nn.Module.__call__ is ORIGINAL_CALL
    assert nn.Module.register_parameter is ORIGINAL_REGISTER
    assert nn.init.normal_ is ORIGINAL_NORMAL
    assert gc.isenabled()


class Waits(nn.Module):
    """A model whose forward meets another thread at a barrier, mid-trace."""

    def __init__(self, barrier: threading.Barrier, width: int) -> None:
        super().__init__()
        self.barrier, self.fc = barrier, nn.Linear(width, 3)

    def forward(self, x):
        self.barrier.wait(timeout=30)
        x = self.fc(x)
        self.barrier.wait(timeout=30)
        return x


def _run_all(*targets) -> list:
    results: list = [None] * len(targets)
    errors: list = []

    def run(i, target):
        try:
            results[i] = target()
        except BaseException as exc:  # noqa: BLE001 - reraised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


def test_two_overlapping_analyses_each_get_their_own_rows_and_leave_torch_as_found():
    barrier = threading.Barrier(2)
    first, second = Waits(barrier, 4), Waits(barrier, 7)
    a, b = _run_all(lambda: shapecheck.analyze(first, "4"), lambda: shapecheck.analyze(second, "7"))
    assert [(l.name, l.output_shapes) for l in a.layers] == [("Waits", ((2, 3),)), ("fc", ((2, 3),))]
    assert [l.input_shapes for l in b.layers] == [((2, 7),), ((2, 7),)]
    assert a.ok and b.ok
    _untouched()


def test_another_threads_model_runs_as_torch_runs_it_during_a_trace():
    barrier = threading.Barrier(2)
    traced = Waits(barrier, 4)

    def plain_forward():
        barrier.wait(timeout=30)  # the trace is now inside its forward
        layer = nn.Linear(3, 2)
        out = layer(torch.ones(1, 3))
        barrier.wait(timeout=30)
        return layer, out

    report, (layer, out) = _run_all(lambda: shapecheck.analyze(traced, "4"), plain_forward)
    assert out.device.type == "cpu" and torch.equal(out, torch.ones(1, 3) @ layer.weight.T + layer.bias)
    assert [l.name for l in report.layers] == ["Waits", "fc"]  # nothing of the other thread's
    _untouched()


def test_an_unrelated_model_built_during_a_build_gets_real_initialised_weights():
    barrier = threading.Barrier(2)

    class ReadsValues(nn.Module):
        """Reads values while building, so the build registers parameters on meta one by one."""

        def __init__(self) -> None:
            super().__init__()
            width = int(torch.arange(4).sum().item())  # 6; .item() fails on meta
            barrier.wait(timeout=30)
            self.fc = nn.Linear(width, 2)
            barrier.wait(timeout=30)

    def unrelated():
        barrier.wait(timeout=30)
        layer = nn.Linear(3, 3)
        nn.init.normal_(layer.weight)
        barrier.wait(timeout=30)
        return layer

    (model, device), layer = _run_all(lambda: construct(ReadsValues), unrelated)
    assert device == "meta" and model.fc.weight.is_meta and model.fc.in_features == 6
    assert layer.weight.device.type == "cpu" and layer.weight.abs().sum() > 0
    _untouched()


def test_an_analysis_nested_in_a_forward_gets_its_own_trace_and_hands_the_outer_back():
    inner_reports = []

    class Outer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 5)
            self.inner = nn.Sequential(nn.Linear(2, 3))

        def forward(self, x):
            inner_reports.append(shapecheck.analyze(self.inner, "2"))
            return self.fc(x)

    outer = shapecheck.analyze(Outer(), "4")
    assert [l.name for l in outer.layers] == ["Outer", "fc"]
    assert outer.outputs == ((2, 5),)
    assert [l.name for l in inner_reports[0].layers] == ["Sequential", "0"]
    assert inner_reports[0].outputs == ((2, 3),)
    _untouched()


def test_a_collector_disabled_by_the_caller_stays_disabled():
    gc.disable()
    try:
        shapecheck.analyze(nn.Linear(3, 2), "3")
        assert not gc.isenabled()
    finally:
        gc.enable()
