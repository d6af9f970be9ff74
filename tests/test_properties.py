"""Property: for random Conv/Pool/BatchNorm/Flatten/Linear stacks, shapes equal a real forward."""
from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import shapecheck
from shapecheck.verify import real_module_shapes, traced_module_shapes, unique_params


@st.composite
def stacks(draw: st.DrawFn) -> tuple[nn.Module, tuple[int, int, int]]:
    channels = draw(st.integers(1, 4))
    height, width = draw(st.integers(8, 40)), draw(st.integers(8, 40))
    layers: list[nn.Module] = []
    c = channels
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "pool", "bn", "avgpool"]))
        if kind == "conv":
            out = draw(st.integers(1, 6))
            layers.append(nn.Conv2d(c, out, draw(st.integers(1, 3)), stride=draw(st.integers(1, 2)),
                                    padding=draw(st.integers(0, 1)), dilation=draw(st.integers(1, 2))))
            c = out
        elif kind == "pool":
            layers.append(nn.MaxPool2d(draw(st.integers(1, 3)), stride=draw(st.integers(1, 2)),
                                       ceil_mode=draw(st.booleans())))
        elif kind == "avgpool":
            layers.append(nn.AvgPool2d(2, padding=draw(st.integers(0, 1))))
        else:
            layers.append(nn.BatchNorm2d(c))
    return nn.Sequential(*layers), (channels, height, width)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stacks(), st.integers(1, 3))
def test_random_stacks_match_a_real_forward(stack, batch):
    convs, (c, h, w) = stack
    x = torch.randn(batch, c, h, w)
    try:
        with torch.no_grad():
            features = convs.eval()(x)
    except RuntimeError:
        # Too small for this stack: shapecheck must say so as an error, never crash.
        report = shapecheck.analyze(convs, f"{c}x{h}x{w}", batch=batch)
        assert report.errors
        return
    head = nn.Linear(features[0].numel(), 3)
    model = nn.Sequential(*convs, nn.Flatten(), head)
    report = shapecheck.analyze(model, f"{c}x{h}x{w}", batch=batch)
    assert report.errors == ()
    assert traced_module_shapes(report) == real_module_shapes(model, x)
    assert report.totals.params == unique_params(model)
