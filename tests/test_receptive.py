"""Receptive fields along the traced chain: what the HTML report shows on hover."""
from __future__ import annotations

import torch
from torch import nn

import shapecheck
from shapecheck import explain
from shapecheck.receptive import WHOLE, Field, describe, receptive_fields


def fields_by_name(model: nn.Module, size: str) -> dict[str, Field]:
    report = shapecheck.analyze(model, size)
    found = receptive_fields(report.layers)
    return {layer.name: found[layer.index] for layer in report.layers if layer.index in found}


def test_the_course_net_grows_5_6_14_16_then_sees_everything(in_repo):
    report = shapecheck.analyze(_quiz_a(), "3x64x64")
    found = receptive_fields(report.layers)
    sizes = [(layer.name, found[layer.index].size, found[layer.index].jump) for layer in report.layers
             if layer.is_leaf and found[layer.index] is not WHOLE]
    assert sizes == [("conv1", (5, 5), (1, 1)), ("relu", (5, 5), (1, 1)), ("pool", (6, 6), (2, 2)),
                     ("conv2", (14, 14), (2, 2)), ("relu", (14, 14), (2, 2)), ("pool", (16, 16), (4, 4))]
    assert describe(found[report.layer("fc1").index]) == "the whole input"
    # The numbers --explain prints, in its first dimension.
    ours = {(layer.name, *((found[layer.index].size[0], found[layer.index].jump[0])
                           if found[layer.index] is not WHOLE else (None, None)))
            for layer in report.layers if layer.is_leaf}
    assert {(step.layer, step.receptive_field, step.stride) for step in explain.steps(report)} <= ours


def _quiz_a() -> nn.Module:
    import importlib.util

    spec = importlib.util.spec_from_file_location("quiz_a", "examples/quiz_a.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Net()


def test_padding_moves_the_field_and_dilation_widens_it():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Conv2d(8, 8, 3, padding=2, dilation=2))
    found = fields_by_name(model, "3x32x32")
    first, second = found["0"], found["1"]
    # A 3x3 window centred on pixel 0 (padding 1 reaches one pixel before the image).
    assert first == Field((3, 3), (2, 2), (0.0, 0.0))
    # Dilation 2 spans 5 of the first map's pixels, 2 input pixels apart: 3 + 4 * 2 = 11.
    assert second == Field((11, 11), (2, 2), (0.0, 0.0))
    assert str(second) == "11x11 input pixels, stride 2x2, first output centred at (0, 0)"


def test_a_rectangular_window_has_a_rectangular_field():
    found = fields_by_name(nn.Sequential(nn.Conv2d(1, 4, (3, 7)), nn.MaxPool2d((1, 2))), "1x16x64")
    assert found["0"].size == (3, 7) and found["1"] == Field((3, 8), (1, 2), (1.0, 3.5))


def test_a_residual_add_takes_the_wider_branch():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.conv(x)  # the skip path alone sees one pixel

    found = fields_by_name(nn.Sequential(nn.Conv2d(3, 4, 1), Block()), "3x16x16")
    assert found["add"].size == (5, 5)


def test_upsampling_brings_outputs_closer_and_a_transposed_conv_too():
    model = nn.Sequential(nn.Conv2d(3, 8, 4, stride=4), nn.Upsample(scale_factor=2),
                          nn.ConvTranspose2d(8, 8, 2, stride=2))
    found = fields_by_name(model, "3x32x32")
    assert found["0"].jump == (4, 4) and found["1"].jump == (2, 2) and found["2"].jump == (1, 1)
    assert found["2"].size == (4, 4)  # each output still reads one 4x4 window of the image


def test_no_spatial_layer_yet_is_one_pixel():
    found = fields_by_name(nn.Sequential(nn.ReLU()), "3x8x8")
    assert describe(found["0"]) == "1 input pixel (no spatial layer yet)"
