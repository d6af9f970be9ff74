"""Building a model for the CLI: on meta, weight initialisation skipped, nothing left changed."""
from __future__ import annotations

import gc
import threading

import pytest
import torch
from torch import nn
from torchvision import models as tv

from shapecheck.target import construct


class Initialised(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out")
        nn.init.trunc_normal_(self.conv.bias, std=0.02)
        self.fc = nn.Linear(8, 4)
        with torch.no_grad():
            self.fc.weight.normal_(0, 0.01)  # a direct fill still runs, on meta


class ReadsValues(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(int(torch.tensor([6]).item()), 2)
        nn.init.xavier_uniform_(self.fc.weight)


def test_models_are_built_on_meta_and_nn_init_is_restored():
    inits = {name: getattr(nn.init, name) for name in dir(nn.init) if name.endswith("_")}
    for factory in (Initialised, ReadsValues, tv.efficientnet_b0, tv.regnet_y_400mf):
        model, device = construct(factory)
        assert device == "meta"
        assert all(t.is_meta for t in model.parameters())
    assert {name: getattr(nn.init, name) for name in inits} == inits
    assert gc.isenabled()


def test_real_tensors_are_still_initialised_while_a_model_is_built():
    seen = []

    class Watcher(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            real = torch.zeros(64, device="cpu")
            nn.init.uniform_(real, 1.0, 2.0)  # on CPU, as another thread's model would be
            seen.append(bool((real >= 1.0).all()))
            self.fc = nn.Linear(2, 2)

    construct(Watcher)
    thread = threading.Thread(target=lambda: construct(Watcher))
    thread.start()
    thread.join()
    assert seen == [True, True]


def test_a_disabled_collector_stays_disabled():
    gc.disable()
    try:
        construct(Initialised)
        assert not gc.isenabled()
    finally:
        gc.enable()


class AsksTheDevice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(8)
        self.register_buffer("table", torch.ones(3, 4, dtype=torch.float16, device=torch.get_default_device()))
        self.register_buffer("cpu_ones", torch.ones(2, device="cpu"))  # a device named outright
        self.scale = nn.Parameter(torch.zeros(5).fill_(2.0))


def test_value_writes_are_skipped_on_meta_and_only_there():
    model, device = construct(AsksTheDevice)
    assert device == "meta"
    with torch.device("meta"):  # what torch itself answers there: meta on 2.14, cpu on 2.6
        asked = torch.get_default_device().type
    shapes = {k: (tuple(t.shape), t.dtype, t.device.type) for k, t in model.state_dict(keep_vars=True).items()}
    assert shapes == {
        "scale": ((5,), torch.float32, "meta"), "norm.weight": ((8,), torch.float32, "meta"),
        "norm.bias": ((8,), torch.float32, "meta"), "norm.running_mean": ((8,), torch.float32, "meta"),
        "norm.running_var": ((8,), torch.float32, "meta"), "norm.num_batches_tracked": ((), torch.int64, "meta"),
        "table": ((3, 4), torch.float16, asked), "cpu_ones": ((2,), torch.float32, "cpu")}
    assert torch.equal(model.cpu_ones, torch.ones(2))
    assert model.scale.requires_grad


def test_a_constructor_error_is_raised_at_once_and_the_constructor_runs_once():
    calls = []

    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            calls.append(1)
            raise ValueError("bad config")

    with pytest.raises(ValueError, match="bad config"):
        construct(Broken)
    assert len(calls) == 1
