"""Real torchvision models: every module's output shape equals a real CPU forward pass."""
from __future__ import annotations

import pytest
import torch
from torchvision import models as tv

import shapecheck
from shapecheck.verify import real_module_shapes, traced_module_shapes, unique_params

MODELS = [
    ("resnet18", 224), ("resnet50", 224), ("vgg11_bn", 224), ("mobilenet_v3_small", 224),
    ("efficientnet_b0", 224), ("densenet121", 224), ("googlenet", 224), ("inception_v3", 299),
    ("squeezenet1_0", 224), ("regnet_y_400mf", 224), ("convnext_tiny", 224), ("vit_b_16", 224),
]


def _build(name: str) -> torch.nn.Module:
    kwargs = {"init_weights": False} if name in ("googlenet", "inception_v3") else {}
    torch.manual_seed(0)
    return getattr(tv, name)(weights=None, **kwargs)


@pytest.mark.parametrize("name, size", MODELS)
def test_shapes_and_params_equal_a_real_forward(name, size):
    model = _build(name)
    report = shapecheck.analyze(model, f"3x{size}x{size}", batch=1)
    assert report.errors == ()
    real = real_module_shapes(model, torch.randn(1, 3, size, size))
    assert traced_module_shapes(report) == real
    assert report.totals.params == unique_params(model)
    assert report.outputs == ((1, 1000),)
    assert report.totals.macs > 0


def test_macs_match_torch_flop_counter_on_a_real_forward():
    from torch.utils.flop_counter import FlopCounterMode

    model = _build("resnet18").eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
    report = shapecheck.analyze(model, "3x64x64", batch=2)
    assert report.totals.flops == counter.get_total_flops()
    assert report.totals.macs * 2 == report.totals.flops


def test_residual_add_and_flatten_get_rows_with_their_source_line():
    report = shapecheck.analyze(_build("resnet18"), "3x64x64")
    adds = [l for l in report.layers if l.kind == "function" and l.name in ("add", "add_")]
    assert len(adds) == 8  # one per BasicBlock
    assert adds[0].parent == "layer1.0" and adds[0].called_at.path.endswith("resnet.py")
    flatten = next(l for l in report.layers if l.type == "torch.flatten")
    assert flatten.output_shapes == ((2, 512),)
