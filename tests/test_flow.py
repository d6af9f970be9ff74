"""Which blocks the HTML picture opens with: every layer of a small net, one block per
repeated stage of a big one (render/flow.py; tests/test_html.py draws them in Chromium)."""
from __future__ import annotations

import torch
import torchvision
from torch import nn

import shapecheck
from shapecheck.render import flow
from shapecheck.report import Report


def first_view(report: Report) -> list[str]:
    """The opening blocks as ``name (type)``, a run as ``type xN``."""
    nodes = flow.tree(report.layers)

    def label(i: int) -> str:
        node = nodes[i]
        if node.row is None:
            body = report.layers[nodes[node.children[0]].row]
            return f"{body.type} x{node.times}" if node.period == 1 else f"{node.period} rows x{node.times}"
        layer = report.layers[node.row]
        if len(node.children) == 1 and nodes[node.children[0]].row is None:
            return f"{layer.name} ({label(node.children[0])})"
        return f"{layer.name} ({layer.type})"

    return [label(i) for i in flow.shown(nodes)]


def pipeline_report(target: str, size: str) -> Report:
    from shapecheck import pipeline
    from shapecheck.spec import parse_input
    from shapecheck.target import parse_target

    return pipeline.run(parse_target(target), pipeline.Options(inputs=(parse_input(size),)))


def test_a_small_net_shows_every_layer(in_repo):
    report = pipeline_report("examples/quiz_c.py:Net", "3x64x64")
    assert first_view(report) == ["conv1 (Conv2d)", "relu (F.relu)", "pool (MaxPool2d)", "conv2 (Conv2d)",
                                  "relu (F.relu)", "pool (MaxPool2d)", "view (Tensor.view)", "fc1 (Linear)",
                                  "relu (F.relu)", "fc2 (Linear)"]


def test_a_unet_opens_at_its_stages_and_its_double_conv_is_not_a_loop(in_repo):
    report = pipeline_report("examples/unet.py:UNet", "3x64x64")
    assert first_view(report) == [
        "down1 (Sequential)", "pool (MaxPool2d)", "down2 (Sequential)", "pool (MaxPool2d)", "down3 (Sequential)",
        "pool (MaxPool2d)", "bottom (Sequential)", "up3 (ConvTranspose2d)", "cat (torch.cat)", "dec3 (Sequential)",
        "up2 (ConvTranspose2d)", "cat (torch.cat)", "dec2 (Sequential)", "up1 (ConvTranspose2d)", "cat (torch.cat)",
        "dec1 (Sequential)", "head (Conv2d)"]
    # Conv, BatchNorm, ReLU twice over: the same three rows, but no loop to fold.
    nodes = flow.tree(report.layers)
    down1 = next(n for n in nodes if n.row is not None and report.layers[n.row].name == "down1")
    assert [report.layers[nodes[c].row].type for c in down1.children] == ["Conv2d", "BatchNorm2d", "ReLU"] * 2


def test_resnet152_folds_each_stage_into_its_repeated_bottleneck():
    with torch.device("meta"):
        model = torchvision.models.resnet152()
    assert first_view(shapecheck.analyze(model, "3x224x224", batch=1)) == [
        "conv1 (Conv2d)", "bn1 (BatchNorm2d)", "relu (ReLU)", "maxpool (MaxPool2d)", "layer1 (Bottleneck x3)",
        "layer2 (Bottleneck x8)", "layer3 (Bottleneck x36)", "layer4 (Bottleneck x3)",
        "avgpool (AdaptiveAvgPool2d)", "flatten (torch.flatten)", "fc (Linear)"]


def test_a_stack_of_single_layers_is_shown_not_folded():
    stack = nn.Sequential(*(nn.Linear(16, 16) for _ in range(4)))
    assert first_view(shapecheck.analyze(stack, "16")) == ["0 (Linear)", "1 (Linear)", "2 (Linear)", "3 (Linear)"]
    # Everything fits the budget: even a run of blocks is open, each layer a block.
    blocks = nn.Sequential(*(nn.Sequential(nn.Linear(16, 16), nn.ReLU()) for _ in range(3)))
    assert len(first_view(shapecheck.analyze(blocks, "16"))) == 6
