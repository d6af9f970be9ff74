"""Code nobody here wrote, in its own patterns: sequence-first models, real example tensors,
functional ops and binary-op mistakes. Each result is held against a real forward."""
from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import shapecheck
from shapecheck.errors import UsageError

OUTSIDE = Path(__file__).parent / "fixtures" / "outside"


def _model(name: str, *args: object) -> nn.Module:
    """The fixture's class, built with real weights: the real forward is the reference."""
    file, _, cls = name.partition(":")
    namespace = runpy.run_path(str(OUTSIDE / file))
    torch.manual_seed(0)
    return namespace[cls](*args)


def _shapes(out) -> tuple:
    """Every output tensor's shape, depth first, as the report lists them."""
    if isinstance(out, torch.Tensor):
        return (tuple(out.shape),)
    return tuple(s for item in out for s in _shapes(item))


# -- the batch: where it is, and example tensors as they are -----------------------------------

def test_example_tensors_are_traced_at_exactly_their_shapes_and_a_shared_second_dim_is_the_batch():
    # pytorch/examples' word language model: ids [T=35, B=2], hidden [layers=2, B=2, H=16].
    model = _model("word_language_model.py:GRUModel").eval()
    ids, hidden = torch.zeros(35, 2, dtype=torch.long), torch.zeros(2, 2, 16)
    report = shapecheck.analyze(model, [ids, hidden])
    assert report.outputs == _shapes(model(ids, hidden)) == ((70, 100), (2, 2, 16))
    assert report.layers[0].input_shapes == ((35, 2), (2, 2, 16))
    assert report.batch == 2 and report.batch_text == "batch 2 in dimension 1"
    assert report.notes[0].startswith("the batch was read as dimension 1 of the example tensors ([35, 2], [2, 2, 16])")
    assert report.findings == () or {f.code for f in report.findings} == {"SHP104"}  # log_softmax: a design note


def test_an_lstm_state_tuple_carries_the_batch_too():
    model = _model("word_language_model.py:RNNModel").eval()
    ids = torch.zeros(35, 3, dtype=torch.long)
    state = model.init_hidden(3)
    report = shapecheck.analyze(model, [ids, state])
    assert report.outputs == _shapes(model(ids, state)) == ((105, 100), (2, 3, 16), (2, 3, 16))
    assert report.batch_text == "batch 3 in dimension 1" and not report.errors


def test_example_tensors_that_share_no_dimension_are_traced_as_they_are_and_say_so():
    # ids [B=4, T=9] batch first, the hidden state [layers=2, B=4, H=16]: nothing is shared.
    model = nn.GRU(16, 16, 2, batch_first=True)
    x, h = torch.zeros(4, 9, 16), torch.zeros(2, 4, 16)
    report = shapecheck.analyze(model, [x, h])
    assert report.outputs == _shapes(model(x, h)) == ((4, 9, 16), (2, 4, 16))
    assert report.batch_text == "" and not report.findings
    assert report.notes[0] == ("the example tensors share no batch dimension ([4, 9, 16], [2, 4, 16]): they were "
                               "traced at exactly their shapes, and no second trace at another batch checked "
                               "the batch; pass batch_dim= to name it")
    # One batch_dim serves every input: here none does (the hidden state is sequence-first).
    with pytest.raises(UsageError, match=r"^batch_dim=0, but the example tensors have sizes 2, 4 there: "
                                         r"\[4, 9, 16\], \[2, 4, 16\]; leave batch_dim out"):
        shapecheck.analyze(model, [x, h], batch_dim=0)


def test_a_sequence_first_model_checked_with_batch_dim_1_has_no_false_finding():
    model = _model("word_language_model.py:RNNModel").eval()
    report = shapecheck.analyze(model, ["35:int64", "(2x16, 2x16)"], batch_dim=1)
    real = model(torch.zeros(35, 2, dtype=torch.long), model.init_hidden(2))
    assert report.outputs == _shapes(real)
    assert {f.code for f in report.findings} == {"SHP104"}, report.findings  # no SHP004, SHP107, SHP109, SHP009
    assert report.batch_text == "batch 2 in dimension 1"


def test_without_batch_dim_a_time_first_rnn_is_pointed_at_the_flag_and_the_logits_fold_is_not_a_bug():
    model = _model("word_language_model.py:RNNModel").eval()
    report = shapecheck.analyze(model, ["35:int64", "(2x16, 2x16)"])
    codes = {f.code for f in report.findings}
    assert "SHP004" not in codes and "SHP109" not in codes  # [T, B, V] -> [T*B, V] keeps each row one sample's
    rnn = next(f for f in report.findings if f.code == "SHP107")
    assert rnn.message.endswith("check it with --batch-dim 1 (batch_dim=1)")


class _Decoder(nn.Module):
    """A batch-first language model head that lays its logits out for the loss."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.head = nn.Embedding(50, 8), nn.Linear(8, 50)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids)).view(-1, 50)


def test_batch_first_logits_merged_with_time_are_not_a_batch_fold():
    report = shapecheck.analyze(_Decoder(), "16:int64")
    assert report.outputs == ((32, 50),) and not report.findings


class _Fold(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(320, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.view(-1, 320))  # 640 features per sample: each sample becomes 2 rows


def test_a_reshape_that_splits_features_across_rows_is_still_a_batch_fold():
    (finding,) = shapecheck.analyze(_Fold(), "640").findings
    assert finding.code == "SHP004" and "each sample becomes 2 rows" in finding.message


def test_batch_dim_reaches_the_cli_the_config_and_the_snapshot(tmp_path: Path, in_repo: Path):
    target = f"{OUTSIDE / 'word_language_model.py'}:RNNModel"
    run = subprocess.run([sys.executable, "-m", "shapecheck", target, "--input", "35:int64",
                          "--input", "(2x16, 2x16)", "--batch-dim", "1", "--format", "json"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["input"][0] == {"shape": [35], "dtype": "int64", "name": None, "exact": False, "batch_dim": 1}
    assert [f["code"] for f in data["findings"]] == ["SHP104"]
    (tmp_path / "lm.py").write_text((OUTSIDE / "word_language_model.py").read_text())
    (tmp_path / "pyproject.toml").write_text(
        '[[tool.shapecheck.models]]\ntarget = "lm.py:RNNModel"\ninput = ["35:int64", "(2x16, 2x16)"]\n'
        'batch_dim = 1\n')
    project = subprocess.run([sys.executable, "-m", "shapecheck"], cwd=tmp_path, capture_output=True, text=True)
    # Only the log_softmax design note: without batch_dim, SHP107 would join it.
    assert project.returncode == 0 and "0 error(s), 1 other finding(s)" in project.stdout, project.stdout
    from shapecheck import snapshot

    report = shapecheck.analyze(_model("word_language_model.py:RNNModel"), ["35:int64", "(2x16, 2x16)"], batch_dim=1)
    assert snapshot.data(report)["batch"] == "2 in dimension 1"


# -- a binary op whose operands cannot broadcast ---------------------------------------------

def test_a_position_table_built_for_another_resolution_is_named_with_the_size_it_was_built_for():
    report = shapecheck.analyze(_model("vit.py:VisionTransformer"), "3x64x64")
    (finding,) = report.errors
    assert finding.code == "SHP009" and finding.layer == "VisionTransformer" and finding.location.line == 30
    assert finding.message.startswith(
        "in VisionTransformer.forward at line 30, cat's output [2, 257, 32] + self.pos_embed [1, 65, 32] cannot "
        "broadcast for input 3x64x64: aligned from the last dimension, dimension -2 is 257 against 65, and only a "
        "size of 1 stretches; self.pos_embed holds 65 positions where the sequence has 257: 8x8 patches of 4x4 and "
        "1 extra token(s), so it was built for 3x32x32 inputs, and 3x64x64 makes a 16x16 grid; feed 3x32x32, "
        "build the model for 3x64x64, or interpolate the table to 16x16 positions; torch says: ")
    assert "cat of" not in finding.message and "joined one" not in finding.message
    # The repair it names runs, as a real forward shows.
    assert shapecheck.analyze(_model("vit.py:VisionTransformer", 64), "3x64x64").ok
    assert _model("vit.py:VisionTransformer", 64)(torch.zeros(2, 3, 64, 64)).shape == (2, 10)


def test_a_parameter_inside_a_block_is_named_as_that_blocks_attribute():
    model = _model("vit.py:VisionTransformer")
    model.blocks[1] = _model("vit.py:WideGamma")
    (finding,) = shapecheck.analyze(model, "3x32x32").errors
    assert finding.layer == "blocks.1" and finding.location.line == 15
    assert finding.message.startswith("in blocks.1 (WideGamma).forward at line 15, self.gamma [16] * "
                                      "blocks.1.mlp's output [2, 65, 32] cannot broadcast")
    assert "dimension -1 is 16 against 32" in finding.message


def test_an_embedding_added_to_a_map_without_its_trailing_ones_gets_the_index_that_fixes_it():
    (finding,) = shapecheck.analyze(_model("vit.py:TimestepBlock"), ["16x8x8", "32"]).errors
    assert finding.layer == "TimestepBlock" and finding.location.line == 56
    assert ("conv1's output [2, 16, 8, 8] + time_emb_proj's output [2, 16] cannot broadcast" in finding.message
            and "index it with [:, :, None, None] to make it [2, 16, 1, 1]" in finding.message)
    block = _model("vit.py:TimestepBlock")
    h, temb = block.conv1(torch.zeros(2, 16, 8, 8)), block.time_emb_proj(torch.zeros(2, 32))
    assert (h + temb[:, :, None, None]).shape == (2, 16, 8, 8)  # the advice, run for real


# -- a functional op is its module twin, everywhere ----------------------------------------------

_TWINS = [  # (module, the same op as a function of x), each changing the spatial size
    (lambda: nn.MaxPool2d(3, 2, 1), lambda x: F.max_pool2d(x, 3, 2, 1)),
    (lambda: nn.AvgPool2d(4), lambda x: F.avg_pool2d(x, 4)),
    (lambda: nn.AvgPool2d(3, stride=2, ceil_mode=True), lambda x: F.avg_pool2d(x, 3, 2, 0, True)),
    (lambda: nn.MaxPool2d(2, dilation=2), lambda x: F.max_pool2d(x, 2, dilation=2)),
    (lambda: nn.AdaptiveAvgPool2d(5), lambda x: F.adaptive_avg_pool2d(x, 5)),
    (lambda: nn.Upsample(scale_factor=2), lambda x: F.interpolate(x, scale_factor=2)),
    (lambda: nn.ZeroPad2d((1, 2, 3, 4)), lambda x: F.pad(x, (1, 2, 3, 4))),
]


class _Twin(nn.Module):
    """conv -> the op -> conv, with the op as a module or as a function."""

    def __init__(self, module: nn.Module | None, function=None) -> None:
        super().__init__()
        # One line each: findings on layers made at one line are folded into one.
        self.stem = nn.Conv2d(3, 4, 3, 2)
        self.op, self.function = module, function
        self.head = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.op(x) if self.op is not None else self.function(x)
        return self.head(x)


def _explained(report) -> list[str]:
    from shapecheck.explain import arithmetic_line
    from shapecheck.receptive import describe, receptive_fields

    fields = receptive_fields(report.layers)
    rows = [layer for layer in report.layers if layer.depth == 1]
    # The row's own name and type differ (op / F.max_pool2d); everything after them must not.
    return [f"{(arithmetic_line(l) or '').split('(', 1)[-1]} | {describe(fields.get(l.index))}" for l in rows]


@pytest.mark.parametrize("size", [23, 30, 33])
@pytest.mark.parametrize("index", range(len(_TWINS)))
def test_a_functional_op_has_its_module_twins_arithmetic_field_and_dropped_pixels(index, size):
    make, call = _TWINS[index]
    as_module, as_function = _Twin(make()), _Twin(None, call)
    spec = f"3x{size}x{size}"
    a, b = shapecheck.analyze(as_module, spec), shapecheck.analyze(as_function, spec)
    assert a.outputs == b.outputs == (tuple(as_function(torch.zeros(2, 3, size, size)).shape),)
    assert _explained(a) == _explained(b)
    dropped = [(f.code, f.message.split(": ", 1)[1].split("(", 1)[1]) for r in (a, b)
               for f in r.findings if f.code == "SHP101" and f.layer != "stem"]
    assert dropped[:len(dropped) // 2] == dropped[len(dropped) // 2:]  # the same rows, the same formula
    from shapecheck.render import hover

    arithmetic = [[row.get("a", "").split("(", 1)[-1] for row in hover.rows(r) if row["d"] == 1] for r in (a, b)]
    assert arithmetic[0] == arithmetic[1]


def test_a_cifar_resnets_functional_average_pool_loses_rows_at_the_sizes_sizes_names(in_repo):
    # kuangliu/pytorch-cifar's ResNet ends in F.avg_pool2d(out, 4): 36x36 leaves a 5x5 map.
    from shapecheck.sizes import Solver
    from shapecheck.spec import parse_input

    model = _model("cifar_resnet.py:ResNet")
    report = shapecheck.analyze(model, "3x36x36")
    pooled = next(f for f in report.findings if f.code == "SHP101" and f.layer == "avg_pool2d")
    assert "F.avg_pool2d(k=4, s=4, p=0) turns 5x5 into 1x1 and never reads the last row and the last column" \
        in pooled.message
    lossy = Solver(model, [parse_input("3x32x32")], (3, None, None)).solve(25, 56).lossy
    assert [d.layer for d in lossy[36]] == ["avg_pool2d"] and 32 not in lossy


# -- the outside panel's CI sample ------------------------------------------------------------

def test_the_outside_sample_matches_real_forwards_and_finds_every_injected_mistake(tmp_path: Path, in_repo: Path):
    """benchmarks/outside.py --sample: our fixtures in outside code's patterns and two
    torchvision models, clean and with mistakes injected, each against a real CPU forward."""
    results = tmp_path / "outside.jsonl"
    run = subprocess.run([sys.executable, "benchmarks/outside.py", "--sample", "--results", str(results), "--no-doc"],
                         capture_output=True, text=True, timeout=900)
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert run.returncode == 0, [r for r in rows if r["verdict"] != "ok"] or run.stderr[-2000:]
    assert len(rows) == 23 and sum(r["mistake"] != "clean" for r in rows) == 17
    assert all(r["line"].startswith(("cifar_resnet.py:", "dcgan.py:", "word_language_model.py:", "vit.py:"))
               for r in rows if r["mistake"] != "clean" and r["source"] != "torchvision")
