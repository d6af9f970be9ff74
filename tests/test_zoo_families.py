"""torchvision's other families, one or two models each at a small input: segmentation, video,
optical flow (two inputs) and detection beyond Faster R-CNN (tests/test_targets.py), plus
classification architectures tests/test_torchvision.py leaves out. Every module call's output
shapes and the parameter count equal a real CPU forward. The whole zoo is
benchmarks/zoo.py's job (docs/zoo.md)."""
from __future__ import annotations

import pytest
import torch
from torchvision import models as tv

import shapecheck
from shapecheck.verify import real_module_shapes, traced_module_shapes, unique_params


def _build(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return tv.get_model(name, weights=None, **kwargs).eval()


def _images(specs: list[str], seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(1, *map(int, spec.split("x")), generator=generator) for spec in specs]


def _leaves(out: object) -> list[tuple[int, ...]]:
    if isinstance(out, torch.Tensor):
        return [tuple(out.shape)]
    if isinstance(out, dict):
        return [s for item in out.values() for s in _leaves(item)]
    if isinstance(out, list | tuple):
        return [s for item in out for s in _leaves(item)]
    return []


DENSE = [  # family, model, inputs (one per forward argument), build arguments
    ("segmentation", "lraspp_mobilenet_v3_large", ["3x128x128"], {"weights_backbone": None}),
    ("segmentation", "deeplabv3_mobilenet_v3_large", ["3x96x96"], {"weights_backbone": None, "aux_loss": True}),
    ("video", "r3d_18", ["3x8x64x64"], {}),
    ("optical_flow", "raft_small", ["3x128x128", "3x128x128"], {}),
    ("classification", "shufflenet_v2_x0_5", ["3x64x64"], {}),
    ("classification", "mnasnet0_5", ["3x64x64"], {}),
]


@pytest.mark.parametrize("family, name, specs, kwargs", DENSE, ids=[case[1] for case in DENSE])
def test_shapes_and_params_equal_a_real_forward(family, name, specs, kwargs):
    model = _build(name, **kwargs)
    report = shapecheck.analyze(model, specs if len(specs) > 1 else specs[0], batch=1)
    assert report.errors == () and not [f for f in report.findings if f.code == "SHP102"], report.findings
    assert report.device == "meta"
    images = _images(specs, 0)
    real = real_module_shapes(model, *images)
    assert traced_module_shapes(report) == real
    with torch.no_grad():
        out = model(*images)
    assert list(report.outputs) == _leaves(out)
    assert report.totals.params == unique_params(model)
    if family == "segmentation":  # {"out": ..., "aux": ...} at the input's resolution
        size = tuple(map(int, specs[0].split("x")[1:]))
        assert report.output_names[0] == "out" and report.outputs[0][2:] == size
    if family == "optical_flow":  # one flow field per refinement step, at full resolution
        assert len(report.outputs) == 12 and report.outputs[-1] == (1, 2, 128, 128)


SMALL = {"weights_backbone": None, "min_size": 128, "max_size": 128}
BOXES = {"0.boxes": 2, "0.scores": 1, "0.labels": 1}  # output name -> rank: boxes [N, 4], scores [N], labels [N]
DETECTION = [
    ("ssdlite320_mobilenet_v3_large", "3x160x160", {"weights_backbone": None}, BOXES),
    ("retinanet_resnet50_fpn", "3x128x128", SMALL, BOXES),
    ("keypointrcnn_resnet50_fpn", "3x128x128", SMALL,
     {"0.boxes": 2, "0.labels": 1, "0.scores": 1, "0.keypoints": 3, "0.keypoints_scores": 2}),
]


@pytest.mark.parametrize("name, spec, kwargs, ranks", DETECTION, ids=[case[0] for case in DETECTION])
def test_a_detector_matches_a_real_forward_on_every_image_independent_row(name, spec, kwargs, ranks):
    """How many boxes survive NMS depends on the image: rows whose shapes change between two
    real images are left out; every other row (backbone, neck, heads) must match."""
    model = _build(name, **kwargs)
    report = shapecheck.analyze(model, spec, batch=1)
    assert report.errors == () and not [f for f in report.findings if f.code == "SHP102"], report.findings
    first = real_module_shapes(model, *_images([spec], 0))
    second = real_module_shapes(model, *_images([spec], 1))
    stable = {key: shapes for key, shapes in first.items() if second.get(key) == shapes}
    traced = traced_module_shapes(report)
    assert sum(key.startswith("backbone") for key in stable) > 20
    assert {key: traced.get(key) for key in stable} == stable
    assert report.totals.params == unique_params(model)
    assert dict(zip(report.output_names, map(len, report.outputs), strict=True)) == ranks
    assert report.output_names == tuple(ranks)
