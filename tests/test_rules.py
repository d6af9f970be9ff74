"""The annotated fixture corpus, in flake8-bugbear's style.

Each file in tests/fixtures/rules/ is a small model. Its first line says how to analyze it
(``# fixture: input=3x32x32 output=10``, any ``shapecheck.analyze`` keyword); every line that should carry a finding ends with
a comment naming the codes (``# SHP001``). Files without such comments must produce nothing.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import shapecheck
from shapecheck.rules import RULES
from shapecheck.target import build, parse_target

FIXTURES = Path(__file__).parent / "fixtures" / "rules"
EXPECT = re.compile(r"#\s*(SHP\d{3}(?:[\s,]+SHP\d{3})*)\s*$")


def _options(path: Path) -> dict[str, str]:
    header = path.read_text().splitlines()[0]
    assert header.startswith("# fixture:"), f"{path.name}: first line must be '# fixture: input=...'"
    return dict(item.split("=", 1) for item in header.removeprefix("# fixture:").split())


def _expected(path: Path) -> set[tuple[int, str]]:
    found = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = EXPECT.search(line)
        if match:
            found |= {(number, code) for code in re.split(r"[\s,]+", match.group(1))}
    return found


def _analyze(path: Path):
    options = _options(path)
    built = build(parse_target(f"{path}:{options.pop('target', 'Net')}"))
    if "checkpoint" in options:
        options["checkpoint"] = str(path.parent / options["checkpoint"])
    return shapecheck.analyze(built.model, options.pop("input"), path=str(path), origin=built.origin, **options)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.py")), ids=lambda p: p.stem)
def test_fixture_findings_are_exactly_the_annotated_ones(path):
    report = _analyze(path)
    found = {(f.location.line, f.code) for f in report.findings if f.location is not None}
    assert all(f.location is not None for f in report.findings), report.findings
    assert found == _expected(path), "\n".join(f"{f.location}: {f.code} {f.message}" for f in report.findings)


def test_every_rule_is_covered_by_the_corpus():
    covered = {code for path in FIXTURES.glob("*.py") for _, code in _expected(path)}
    assert covered == set(RULES)


def test_clean_models_cover_residual_adaptive_audio_and_value_reading_constructors():
    clean = {p.stem for p in FIXTURES.glob("clean_*.py")}
    assert {"clean_resnet", "clean_conv1d_audio", "clean_value_constructor"} <= clean
    assert all(not _expected(FIXTURES / f"{name}.py") for name in clean)


def test_value_branching_forward_runs_on_cpu_and_still_finds_the_mismatch():
    report = _analyze(FIXTURES / "value_branch.py")
    assert report.device == "cpu"
    assert "Linear expects in_features=72 (8 * 3 * 3) but receives 32 = 8x2x2" in report.errors[0].message


@pytest.mark.parametrize("fixture, code, fragment", [
    ("input_too_small", "SHP005", "the map is 3x3 after pool but Conv2d needs at least 5x5; "
                                  "the smallest input that runs is 3x24x24"),
    ("dropped_pixels", "SHP101", "pool: MaxPool2d(k=2, s=2, p=0) turns 15x15 into 7x7 and never reads the last row "
                                 "and the last column (15 -> floor(15 / 2) = 7)"),
    ("bias_before_batchnorm", "SHP103", "conv: Conv2d has bias=True but feeds bn (BatchNorm2d) directly, which "
                                        "subtracts each channel's mean: its 8 bias parameters do nothing"),
    ("softmax_output", "SHP104", "nn.CrossEntropyLoss applies log-softmax itself, so this is a double softmax"),
    ("flattened_linear", "SHP105", "fc1: Linear holds 20,490 of 25,578 parameters (80%)"),
    ("flattened_linear", "SHP106", "in_features=32 * 8 * 8 counts the pixels of the 32x8x8 map, so the model "
                                   "only accepts inputs 3x32x32 to 3x35x35"),
    ("hardcoded_batch", "SHP004", "reshape(2, 8) does not keep the batch"),
    ("channels_last", "SHP006", "pass --input 3x32x32, or call x.permute(0, 3, 1, 2)"),
    ("checkpoint_mismatch", "SHP301", "checkpoint fc.weight is [2, 256] but the model's is [2, 144]: "
                                      "it was trained on 10 px inputs (3x10x10), you are feeding 3x8x8"),
    ("budgets", "SHP203", "activation memory 64.20 KiB for batch 2 exceeds --max-activation-memory 1000 B"),
])
def test_messages_carry_the_numbers(fixture, code, fragment):
    messages = [f.message for f in _analyze(FIXTURES / f"{fixture}.py").findings if f.code == code]
    assert messages and fragment in messages[0], messages


def test_unused_submodules_name_their_parameter_count():
    messages = [f.message for f in _analyze(FIXTURES / "unused_submodule.py").findings]
    assert any(m.startswith("extra (Sequential) is defined but never called") and "584 parameters" in m
               for m in messages)
    assert any(m.startswith("dropout (Dropout)") and "no parameters" in m for m in messages)


class ReadsWeights(nn.Module):
    """head is never called, but forward reads its weight; decoder's only weight is tied to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.head = nn.Linear(8, 8)
        self.decoder = nn.Linear(8, 20, bias=False)
        self.decoder.weight = self.embed.weight
        self.table = Table()

    def forward(self, x):
        h = F.linear(self.embed(x), self.head.weight) + self.table.scale
        return F.linear(h, self.embed.weight)


class Table(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(8))


def test_a_weight_read_in_forward_keeps_its_module_but_a_tied_alias_does_not():
    report = shapecheck.analyze(ReadsWeights(), "5:int64")
    unused = [f.layer for f in report.findings if f.code == "SHP102"]
    assert unused == ["decoder"]


def test_select_and_ignore_take_prefixes():
    path = FIXTURES / "flattened_linear.py"
    built = build(parse_target(f"{path}:Net"))
    assert {f.code for f in shapecheck.analyze(built.model, "3x32x32", ignore=["SHP10"]).findings} == set()
    assert {f.code for f in shapecheck.analyze(built.model, "3x32x32", select=["SHP106"]).findings} == {"SHP106"}


def test_a_wrong_rank_input_says_what_rank_the_layer_wants(in_repo):
    built = build(parse_target("examples/quiz_a.py:Net"))
    report = shapecheck.analyze(built.model, "3x64")
    assert [f.code for f in report.errors] == ["SHP009"]
    assert report.errors[0].message == (
        "conv1: Conv2d expects [B, C, H, W] (4 dimensions) but receives [2, 3, 64] for input 3x64; "
        "give one sample's shape without the batch as C x H x W, e.g. --input 3x64xW with your data's W")


def test_a_vector_input_to_a_conv_is_not_read_as_a_cube(in_repo):
    # --input 100 meant 100 channels or a 1-d signal, not a 100x100x100 image: the sizes not given stay named.
    model = torch.nn.Sequential(torch.nn.Conv2d(100, 8, 3))
    report = shapecheck.analyze(model, "100")
    assert report.errors[0].message.endswith("e.g. --input 100xHxW with your data's H and W")


def test_an_ignored_rule_costs_no_extra_trace(monkeypatch):
    """A pre-commit config that ignores SHP004 and SHP106 must not pay for their traces."""
    from shapecheck import analysis
    from shapecheck.sizes import Solver

    calls = []
    real_trace = analysis.trace
    monkeypatch.setattr(analysis, "trace", lambda *a, **k: calls.append(a[2]) or real_trace(*a, **k))
    hardcoded = build(parse_target(f"{FIXTURES / 'hardcoded_batch.py'}:Net")).model
    assert [f.code for f in shapecheck.analyze(hardcoded, "3x32x32").findings] == ["SHP004"]
    assert calls == [2, 3]  # reshape(2, 8) writes the batch: checked again at batch 3
    calls.clear()
    assert shapecheck.analyze(hardcoded, "3x32x32", ignore=["SHP004"]).findings == ()
    assert calls == [2]

    flattened = build(parse_target(f"{FIXTURES / 'flattened_linear.py'}:Net")).model
    monkeypatch.setattr(Solver, "fits", lambda *a: pytest.fail("SHP106 is ignored: no probing"))
    report = shapecheck.analyze(flattened, "3x32x32", ignore=["SHP106"])
    assert {f.code for f in report.findings} == {"SHP105"}


def test_only_a_name_that_always_holds_a_number_counts_as_a_hard_coded_batch(tmp_path, monkeypatch):
    from shapecheck.report import Location
    from shapecheck.sources import names_a_constant

    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.py").write_text(
        "BATCH = 64\nn = 4\n\n\ndef f(x):\n    n = x.size(0)\n    self.bs = 8\n    self.rows: int = x.shape[0]\n")
    here = Location("m.py", 5)
    assert names_a_constant(here, "BATCH") and names_a_constant(here, "self.bs")
    assert not names_a_constant(here, "n")  # also assigned x.size(0)
    assert not names_a_constant(here, "self.rows") and not names_a_constant(here, "x.size(0)")


def test_findings_of_one_rule_at_one_line_are_one_finding_with_the_count_and_names():
    built = build(parse_target(f"{FIXTURES.parent / 'unet_helper.py'}:UNet"))
    report = shapecheck.analyze(built.model, "3x64x64")
    bias = [f for f in report.findings if f.code == "SHP103"]
    assert [f.location.line for f in bias] == [8, 11]  # the helper's two convolutions, once each
    assert bias[0].message.endswith("[5 layers made at this line: d1.0, d2.0, d3.0, c2.0, ...]")


def test_a_finding_inside_a_helper_names_the_models_call_of_the_helper():
    built = build(parse_target(f"{FIXTURES / 'sequential_helper.py'}:Net"))
    (finding,) = shapecheck.analyze(built.model, "3x32x32").errors
    assert finding.location.line == 7 and finding.message.endswith("(made by the call at line 16)")


def test_a_wrong_output_size_is_blamed_on_the_layer_that_made_it(in_repo):
    # DCGAN's discriminator, built for 64x64, fed 128x128: its last conv makes 5x5, the Sigmoid after it only keeps it.
    built = build(parse_target("tests/fixtures/outside/dcgan.py:Discriminator"))
    report = shapecheck.analyze(built.model, "3x128x128", output="1x1x1")
    finding = next(f for f in report.errors if f.code == "SHP007")
    assert finding.layer == "main.11" and finding.location.line == 22
    assert finding.message.endswith("main.11 (Conv2d) makes that shape: 8 -> floor((8 + 2*0 - 4) / 1) + 1 = 5 "
                                    "([2, 512, 8, 8] -> [2, 1, 5, 5])")
