"""The course examples: correct ones are clean, broken ones name the code, layer, line and numbers."""
from __future__ import annotations

import pytest
import torch

from shapecheck.target import build, parse_target
import shapecheck
from shapecheck.verify import real_module_shapes, traced_module_shapes

# Correct models: no errors, and only the design advice each one deserves.
FLATTENED = {"SHP105", "SHP106"}  # a hard-coded flatten into a dominant Linear
CLEAN = [
    ("examples/simple_cnn.py:SimpleCNN", "3x32x32", (10,), FLATTENED),
    ("examples/cat_dog_cnn.py:CatDogCNN", "3x150x150", (1,), FLATTENED | {"SHP101"}),
    ("examples/quiz_a.py:Net", "3x64x64", (5,), FLATTENED),
    ("examples/one_layer.py:OneLayer", "3x32x32", (8, 16, 16), set()),
]

# (target, input, code, layer, line:col, message fragment), one row per expected finding.
BROKEN = [
    ("examples/quiz_b.py:Net", "3x64x64", "SHP001", "fc1", "10:9",
     "fc1: Linear expects in_features=10240 (10 * 32 * 32) but receives 9610 = 10x31x31 from pool [2, 10, 31, 31] "
     "for input 3x64x64; 10240 fits 3x66x66 to 3x67x67 inputs"),
    ("examples/quiz_b.py:Net", "3x64x64", "SHP003", "view", "14:13",
     "view(-1, 10240) cannot reshape [2, 10, 31, 31] (19220 elements): each sample has 9610 = 10x31x31"),
    ("examples/quiz_c.py:Net", "3x64x64", "SHP001", "fc1", "11:9",
     "fc1: Linear expects in_features=2880 (20 * 12 * 12) but receives 3380 = 20x13x13 from pool [2, 20, 13, 13] "
     "for input 3x64x64; 2880 fits 3x60x60 to 3x63x63 inputs"),
    ("examples/quiz_c.py:Net", "3x64x64", "SHP003", "view", "17:13",
     "view(-1, 2880) cannot reshape [2, 20, 13, 13] (6760 elements): each sample has 3380 = 20x13x13"),
    ("examples/quiz_d.py:Net", "3x64x64", "SHP001", "fc1", "11:9",
     "fc1: Linear expects in_features=3920 (20 * 14 * 14) but receives 3380 = 20x13x13 from pool [2, 20, 13, 13] "
     "for input 3x64x64; 3920 fits 3x68x68 to 3x71x71 inputs"),
    ("examples/quiz_d.py:Net", "3x64x64", "SHP003", "view", "17:13",
     "view(-1, 3920) cannot reshape [2, 20, 13, 13] (6760 elements)"),
    ("examples/folded_batch.py:Net", "3x64x64", "SHP004", "view", "17:13",
     "view(-1, 1690) does not keep the batch: [2, 20, 13, 13] -> [4, 1690] at batch 2, [3, 20, 13, 13] -> "
     "[6, 1690] at batch 3; each sample becomes 2 rows for input 3x64x64; use x.flatten(1)"),
    ("examples/missing_import.py:Net", "3x32x32", "SHP008", "", "12:23",
     "NameError: name 'F' is not defined; add `import torch.nn.functional as F` at the top of the file"),
]


def _report(target: str, spec: str, **kwargs):
    built = build(parse_target(target))
    return shapecheck.analyze(built.model, spec, name=built.target.name, path=built.target.path, **kwargs)


@pytest.mark.parametrize("target, spec, output, advice", CLEAN)
def test_clean_examples_have_no_errors_and_match_a_real_forward(in_repo, target, spec, output, advice):
    report = _report(target, spec)
    assert {f.code for f in report.findings} == advice
    assert all(f.severity != "error" for f in report.findings)
    assert report.outputs == ((2, *output),)
    model = build(parse_target(target)).model.to_empty(device="cpu")
    real = real_module_shapes(model, torch.randn(2, *map(int, spec.split("x"))))
    assert traced_module_shapes(report) == real


@pytest.mark.parametrize("target, spec, code, layer, where, message", BROKEN)
def test_broken_examples_name_code_layer_line_and_numbers(in_repo, target, spec, code, layer, where, message):
    report = _report(target, spec)
    matching = [f for f in report.findings if f.code == code]
    assert len(matching) == 1, report.findings
    finding = matching[0]
    path = target.split(":")[0]
    assert f"{finding.location.path}:{finding.location.line}:{finding.location.column}" == f"{path}:{where}"
    assert (finding.layer or "") in (layer, "Net")
    assert message in finding.message
    assert finding.severity == "error"


def test_broken_linear_keeps_going_and_prints_the_whole_table(in_repo):
    report = _report("examples/quiz_c.py:Net", "3x64x64")
    assert [l.name for l in report.layers if l.depth == 1] == [
        "conv1", "relu", "pool", "conv2", "relu", "pool", "view", "fc1", "relu", "fc2"]
    assert report.outputs == ((2, 5),)
    assert report.layer("fc1").failed and not report.layer("fc2").failed
    assert report.layer("fc1").called_at.line == 18


def test_one_layer_question_gives_1x8x16x16(in_repo):
    report = _report("examples/one_layer.py:OneLayer", "3x32x32", batch=1)
    assert report.outputs == ((1, 8, 16, 16),)
    assert report.layer("conv").output_shapes == ((1, 8, 32, 32),)
