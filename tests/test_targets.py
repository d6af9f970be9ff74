"""Every model a user has: lazy modules, module-level instances, dotted targets."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from torch import nn

import shapecheck
from shapecheck.cli import main


class Lazy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.LazyConv2d(8, 3)
        self.bn = nn.LazyBatchNorm2d()
        self.fc = nn.LazyLinear(10)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).flatten(1))


def test_lazy_modules_are_inferred_on_a_copy_and_the_users_stay_uninitialised():
    model = Lazy()
    report = shapecheck.analyze(model, "3x16x16")
    assert report.ok and report.outputs == ((2, 10),)
    fc = report.layer("fc")
    assert fc.attr("in_features") == 8 * 14 * 14 and report.layer("conv").attr("in_channels") == 3
    real = Lazy()
    real(torch.randn(1, 3, 16, 16))  # the ground truth: torch's own inference
    assert report.totals.params == sum(p.numel() for p in real.parameters())
    assert isinstance(model.fc.weight, nn.parameter.UninitializedParameter)  # untouched
    assert type(model.fc) is nn.LazyLinear and isinstance(model.bn.running_mean, nn.parameter.UninitializedBuffer)


def test_a_lazy_layer_after_a_broken_one_is_still_inferred():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(16, 4, 3), nn.Flatten(), nn.LazyLinear(2))
    report = shapecheck.analyze(model, "3x16x16")
    assert [f.code for f in report.errors] == ["SHP002"]
    assert report.layer("3").attr("in_features") == 4 * 12 * 12


def _write(tmp_path, name: str, text: str) -> None:
    (tmp_path / name).write_text(textwrap.dedent(text))


def test_a_module_level_instance_is_analyzed_as_is_and_located(tmp_path, monkeypatch, capsys):
    _write(tmp_path, "inst.py", """\
        import torch.nn as nn

        model = nn.Sequential(
            nn.Conv2d(3, 8, 3),
            nn.Flatten(),
            nn.Linear(8 * 15 * 15, 10),
        )
    """)
    monkeypatch.chdir(tmp_path)
    assert main(["inst.py:model", "--input", "3x16x16"]) == 1
    out = capsys.readouterr().out
    assert "inst.py:6:5: SHP001 2: Linear expects in_features=1800 (8 * 15 * 15)" in out
    assert "contextlib" not in out and "built on CPU" not in out


def test_a_dotted_target_resolves_from_the_working_directory(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    _write(tmp_path / "pkg", "nets.py", """\
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)

            def forward(self, x):
                return self.fc(x)
    """)
    script = Path(sys.executable).parent / "shapecheck"  # its sys.path starts at bin/, not the working directory
    done = subprocess.run([str(script), "pkg.nets:Net", "--input", "4"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "fc (Linear)" in done.stdout


def test_a_detection_model_runs_on_cpu_and_keeps_its_anchor_cache():
    """Faster R-CNN reads values (anchors, NMS): the CPU fallback must work, and the meta
    trace before it must not leave meta anchors cached in the user's model."""
    import torchvision

    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=3).eval()
    anchors = model.rpn.anchor_generator.cell_anchors
    report = shapecheck.analyze(model, "3x320x320", batch=1)
    assert report.errors == ()
    assert [len(shape) for shape in report.outputs] == [2, 1, 1]  # boxes [N, 4], labels [N], scores [N]
    if report.device == "cpu":  # torchvision 0.29 reads values here; 0.19 to 0.21 run it on meta
        assert "ran on CPU with" in report.notes[0] and "for this run only" in report.notes[0]
    assert model.rpn.anchor_generator.cell_anchors is anchors
    assert all(a.device.type == "cpu" for a in anchors)


def test_dict_outputs_keep_their_keys_in_text_json_and_snapshots():
    import json

    from shapecheck import snapshot
    from shapecheck.render import formatter

    class Heads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.box, self.cls = nn.Linear(8, 4), nn.Linear(8, 3)

        def forward(self, x):
            return {"boxes": self.box(x), "logits": self.cls(x)}

    report = shapecheck.analyze(Heads(), "8")
    assert report.output_names == ("boxes", "logits") and report.outputs == ((2, 4), (2, 3))
    assert "Outputs: boxes [2, 4], logits [2, 3]" in formatter("text")(report)
    assert json.loads(formatter("json")(report))["output_names"] == ["boxes", "logits"]
    assert snapshot.data(report)["outputs"] == {"boxes": [2, 4], "logits": [2, 3]}


class Gated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.gate = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(1, 8, 3, padding=1)

    def forward(self, image, mask=None):
        y = self.conv(image)
        return y if mask is None else y * self.gate(mask).sigmoid()


def test_named_inputs_are_passed_as_keyword_arguments():
    report = shapecheck.analyze(Gated(), ["image=3x32x32", "mask=1x32x32"])
    assert [layer.name for layer in report.layers if layer.kind == "module"] == ["Gated", "conv", "gate"]
    assert report.input_text == "image=3x32x32, mask=1x32x32" and report.ok
    broken = shapecheck.analyze(Gated(), ["image=3x32x32", "mask=2x32x32"])
    assert [f.code for f in broken.errors] == ["SHP002"]


def test_a_named_input_forward_does_not_take_is_a_usage_error():
    import pytest

    from shapecheck.errors import UsageError

    with pytest.raises(UsageError, match="has no parameter img"):
        shapecheck.analyze(Gated(), "img=3x32x32")


def test_ssd_and_raft_analyze_without_false_findings():
    import torchvision

    ssd = torchvision.models.detection.ssdlite320_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=3).eval()
    report = shapecheck.analyze(ssd, "3x320x320", batch=1)
    assert report.device == "cpu" and report.errors == ()
    assert report.output_names == ("0.boxes", "0.scores", "0.labels")
    raft = torchvision.models.optical_flow.raft_small().eval()
    flow = shapecheck.analyze(raft, ["3x128x128", "3x128x128"], batch=1)
    assert flow.device == "meta" and not [f for f in flow.findings if f.severity != "info"]  # corr_block is used
    assert flow.outputs[-1] == (1, 2, 128, 128)


def test_a_compiled_model_is_analyzed_as_the_module_it_wraps():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 30 * 30, 2))
    report = shapecheck.analyze(torch.compile(model), "3x32x32")
    assert report.model == "Sequential" and report.outputs == ((2, 2),) and report.errors == ()


def test_a_scripted_submodule_is_traced_without_false_findings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated, and still used
        scripted = torch.jit.script(nn.Linear(4, 2))
    report = shapecheck.analyze(nn.Sequential(nn.Linear(3, 4), scripted), "3")
    assert report.outputs == ((2, 2),) and report.findings == ()


def test_a_list_input_is_one_list_of_images_for_a_detector(capsys):
    """``--input "[3x320x320, 3x240x400]"``: one ``list[Tensor]`` argument, one image per item,
    with no batch in front: torchvision's detectors take their images so, each its own size."""
    import json

    import torchvision

    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=3).eval()
    report = shapecheck.analyze(model, "[3x320x320, 3x240x400]")
    assert report.errors == () and report.input_text == "[3x320x320, 3x240x400]"
    assert report.output_names[:3] == ("0.boxes", "0.labels", "0.scores") and report.output_names[3] == "1.boxes"
    backbone = [layer for layer in report.layers if layer.name == "backbone.body"]
    # the transform resizes both to one padded batch: 320 wide, 400 rounded up to 416 by 32
    assert [s[0] for s in backbone[0].input_shapes] == [2]
    from shapecheck.render import formatter

    header = formatter("text")(report).splitlines()[0]
    assert header.startswith("FasterRCNN: input [3x320x320, 3x240x400], traced on") and "batch" not in header
    data = json.loads(formatter("json")(report))
    assert data["input"] == [{"container": "list", "name": None, "items": [
        {"shape": [3, 320, 320], "dtype": "float32", "name": None, "exact": True, "batch_dim": None},
        {"shape": [3, 240, 400], "dtype": "float32", "name": None, "exact": True, "batch_dim": None}]}]


class Batched(nn.Module):
    """A training-loop model that takes the whole batch dict."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.gate = nn.Conv2d(3, 4, 3), nn.Conv2d(1, 4, 3)

    def forward(self, batch):
        return self.conv(batch["image"]) * self.gate(batch["mask"]).sigmoid()


def test_a_dict_input_is_one_dict_argument_of_batched_tensors():
    report = shapecheck.analyze(Batched(), "{image: 3x16x16, mask: 1x16x16}", batch=3)
    assert report.ok and report.outputs == ((3, 4, 14, 14),)
    assert report.layer("conv").input_shapes == ((3, 3, 16, 16),)
    broken = shapecheck.analyze(Batched(), "{image: 3x16x16, mask: 2x16x16}")
    assert [(f.code, f.layer) for f in broken.errors] == [("SHP002", "gate")]


def test_the_cli_takes_list_and_dict_inputs_and_says_how_to_write_them(tmp_path, capsys):
    path = tmp_path / "batched.py"
    path.write_text(textwrap.dedent("""
        from torch import nn

        class Batched(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv, self.gate = nn.Conv2d(3, 4, 3), nn.Conv2d(1, 4, 3)

            def forward(self, batch):
                return self.conv(batch["image"]) * self.gate(batch["mask"]).sigmoid()
    """))
    assert main([f"{path}:Batched", "--input", "{image: 3x16x16, mask: 1x16x16}"]) == 0
    assert "input {image: 3x16x16, mask: 1x16x16}, batch 2" in capsys.readouterr().out
    for bad in ("{image 3x16x16}", "[3x16x16", "[3x16x16] x2", "[]"):
        assert main([f"{path}:Batched", "--input", bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "a dict input is {image: 3x224x224, mask: 1x224x224}" in err, err


def test_real_example_tensors_give_only_their_shapes_and_their_batch():
    """As torchinfo's input_data: tensors, nested in lists and dicts as forward takes them.
    The trace sees meta tensors of their shapes and dtypes; the leading size is the batch."""
    seen: list[torch.device] = []

    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed, self.proj = nn.Embedding(10, 8), nn.Linear(8, 4)

        def forward(self, ids, extras):
            seen.append(ids.device)
            return self.proj(self.embed(ids)) + extras["bias"]

    ids = torch.randint(0, 10, (5, 7))
    extras = {"bias": torch.zeros(5, 7, 4)}
    report = shapecheck.analyze(Pair(), [ids, extras])
    assert report.batch == 5 and report.outputs == ((5, 7, 4),) and report.ok
    assert report.input_text == "7:int64, {bias: 7x4}"  # a dict's tensors carry the batch, as in a spec
    assert seen == [torch.device("meta")] * len(seen) and seen
    assert shapecheck.analyze(Pair(), {"ids": ids, "extras": extras}).outputs == ((5, 7, 4),)  # keyword arguments
    with __import__("pytest").raises(ValueError, match="have a batch of 5"):
        shapecheck.analyze(Pair(), [ids, extras], batch=4)


class CompiledBlock(nn.Module):
    BLOCK_LINE = sys._getframe().f_lineno + 5

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.block = torch.compile(nn.Conv2d(8, 4, 3), backend="eager")
        self.fc = nn.Linear(4 * 28 * 28, 2)

    def forward(self, x):
        return self.fc(self.block(self.stem(x)).flatten(1))


def test_a_compiled_submodule_is_traced_as_the_module_it_wraps_without_dynamo():
    """A ``torch.compile``'d block inside an eager model: its row is the Conv2d it wraps, under
    the author's name (no ``_orig_mod``), located at the author's line; dynamo never runs on
    the meta tensors, so nothing of its reaches the user's log."""
    import logging
    import warnings

    model = CompiledBlock()
    logged: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = logged.append  # type: ignore[method-assign]
    logging.getLogger("torch").addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = shapecheck.analyze(model, "3x32x32")
    finally:
        logging.getLogger("torch").removeHandler(handler)
    assert [(layer.name, layer.type) for layer in report.layers if layer.kind == "module"] == [
        ("CompiledBlock", "CompiledBlock"), ("stem", "Conv2d"), ("block", "Conv2d"), ("fc", "Linear")]
    assert report.errors == () and not [f for f in report.findings if f.code == "SHP102"]
    assert report.layer("block").defined_at.line == CompiledBlock.BLOCK_LINE
    assert caught == [] and logged == []


def test_a_compiled_model_in_another_thread_meets_no_graph_break_from_our_hooks():
    """While an analysis holds nn.Module.__call__ and __getattr__, another thread's compiled
    model is traced by dynamo through them: it must compile with no graph break."""
    import threading

    from torch._dynamo.utils import counters

    from shapecheck import patches

    holding, release = threading.Event(), threading.Event()

    def analysis_in_progress() -> None:
        with patches.module_calls(lambda call, m, a, k: call(m, *a, **k)), patches.module_fetches(lambda m: None):
            holding.set()
            release.wait()

    worker = threading.Thread(target=analysis_in_progress)
    worker.start()
    holding.wait()
    try:
        counters.clear()
        compiled = torch.compile(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3)), backend="eager")
        with torch.no_grad():
            out = compiled(torch.randn(1, 3, 16, 16))
    finally:
        release.set()
        worker.join()
    assert out.shape == (1, 8, 12, 12)
    assert dict(counters["graph_break"]) == {} and counters["stats"]["unique_graphs"] == 1
