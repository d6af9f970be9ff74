"""Code nobody here wrote: each model against a real CPU forward, clean and with mistakes
people make injected. Writes docs/outside.md.

    .venv/bin/python benchmarks/outside.py                  # the whole panel
    .venv/bin/python benchmarks/outside.py --sample         # the CI sample (our fixtures, 2 torchvision)
    .venv/bin/python benchmarks/outside.py --report-only    # docs/outside.md from the results so far

segmentation-models-pytorch, MONAI and diffusers are not test extras; install them into
this benchmark's own folder (no dependencies: torch, timm and huggingface_hub come from the
project's environment):

    .venv/bin/pip install --no-deps --target benchmarks/.outside segmentation-models-pytorch \\
        monai diffusers requests urllib3 idna certifi charset-normalizer regex importlib_metadata zipp

Without them, their rows say "not installed". The patterns of code that is not a package
(kuangliu/pytorch-cifar, pytorch/examples) live in tests/fixtures/outside/, written anew.

Each case is a model and an input. A **clean** case must match the real forward: the same
outputs, the same parameter count, every module's output shape as its first call made it,
and no finding beyond the design notes listed for it. A **mistake** case must fail for
real; shapecheck's first error must fall on the module whose forward raised (the failing
row, or the module whose forward ran the failing op), with the input shapes that module
really received, and, for a model in a file of its own, at a line of that file where the
module is made or called. Library models keep no location: a finding inside an installed
package is not one a user can edit (docs/api.md), so their line is "n/a".
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = ROOT / "tests" / "fixtures" / "outside"
PACKAGES = Path(__file__).resolve().parent / ".outside"
RESULTS = ROOT / "docs" / "results" / "outside.jsonl"
DOC = ROOT / "docs" / "outside.md"
sys.path.insert(0, str(ROOT))
if PACKAGES.is_dir():
    sys.path.append(str(PACKAGES))  # after the project's own: torch and timm stay the venv's

import torch  # noqa: E402
from torch import nn  # noqa: E402

import shapecheck  # noqa: E402
from shapecheck.modelstate import make_arguments  # noqa: E402
from shapecheck.spec import read_inputs  # noqa: E402

torch.set_num_threads(1)


@dataclass(frozen=True)
class Case:
    source: str
    model: str
    build: Callable[[], nn.Module]
    input: Any
    mistake: str | None = None  # what was injected; None: a clean case
    file: Path | None = None  # the model's own file, where findings must point
    allowed: frozenset[str] = frozenset()  # design notes a clean case may carry (SHP104 log_softmax)
    options: dict = field(default_factory=dict)


@dataclass
class Result:
    source: str
    model: str
    mistake: str
    input: str
    verdict: str  # "ok" or what went wrong
    layer: str = ""
    line: str = ""
    finding: str = ""


def _fixture(file: str, cls: str, *args: Any) -> Callable[[], nn.Module]:
    """The class as a user's ``import`` gives it: a module with a file, in sys.modules."""
    def build() -> nn.Module:
        name = f"outside_{Path(file).stem}"
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, OUTSIDE / file)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        return getattr(sys.modules[name], cls)(*args)
    return build


def _fixtures() -> list[Case]:
    resnet, dcgan = _fixture("cifar_resnet.py", "ResNet"), _fixture("dcgan.py", "Discriminator")
    lm, vit = _fixture("word_language_model.py", "RNNModel"), _fixture("vit.py", "VisionTransformer")
    files = {name: OUTSIDE / name for name in ("cifar_resnet.py", "dcgan.py", "word_language_model.py", "vit.py")}
    seq = {"batch_dim": 1}
    return [
        Case("pytorch-cifar", "ResNet18", resnet, "3x32x32", file=files["cifar_resnet.py"]),
        Case("pytorch-cifar", "ResNet18", resnet, "3x64x64", "a size change: 64x64 into a head sized for 32x32",
             files["cifar_resnet.py"]),
        Case("pytorch-cifar", "ResNet18", resnet, "32x32x3", "channels-last input", files["cifar_resnet.py"]),
        Case("pytorch-cifar", "ResNet18", resnet, "1x32x32", "grayscale into an RGB stem", files["cifar_resnet.py"]),
        Case("pytorch-cifar", "ResNet18", _fixture("cifar_resnet.py", "ResNetNoFlatten"), "3x32x32",
             "a missing flatten", files["cifar_resnet.py"]),
        Case("pytorch/examples", "DCGAN D", dcgan, "3x64x64", file=files["dcgan.py"]),
        Case("pytorch/examples", "DCGAN D", dcgan, "64x64x3", "channels-last input", files["dcgan.py"]),
        Case("pytorch/examples", "DCGAN D", dcgan, "1x64x64", "grayscale into an RGB stem", files["dcgan.py"]),
        Case("pytorch/examples", "word LM (LSTM)", lm, ["35:int64", "(2x16, 2x16)"], file=files["word_language_model.py"],
             allowed=frozenset({"SHP104"}), options=seq),
        Case("pytorch/examples", "word LM (LSTM)", lm, ["35:int64", "(2x8, 2x8)"], "hidden state of the wrong size",
             files["word_language_model.py"], options=seq),
        Case("pytorch/examples", "word LM (LSTM)", lm, ["35:int64", "(1x16, 1x16)"], "hidden state for 1 layer of 2",
             files["word_language_model.py"], options=seq),
        Case("timm pattern", "ViT", vit, "3x32x32", file=files["vit.py"]),
        Case("timm pattern", "ViT", vit, "3x64x64", "a position table built for 32x32", files["vit.py"]),
        Case("timm pattern", "ViT", vit, "1x32x32", "grayscale into an RGB stem", files["vit.py"]),
        Case("diffusers pattern", "ResnetBlock2D", _fixture("vit.py", "TimestepBlock"), ["16x8x8", "32"],
             "a timestep embedding without [:, :, None, None]", files["vit.py"]),
    ]


def _torchvision(names: list[str]) -> list[Case]:
    import torchvision

    found = []
    for name in names:
        build = (lambda name=name: torchvision.models.get_model(name, weights=None, num_classes=10))
        # SqueezeNet's stem (k=7, s=2, p=0) never reads the last row of 64x64, or of 224x224: true.
        true = frozenset({"SHP101"}) if name.startswith("squeezenet") else frozenset()
        found += [Case("torchvision", name, build, "3x64x64", allowed=true),
                  Case("torchvision", name, build, "64x64x3", "channels-last input"),
                  Case("torchvision", name, build, "1x64x64", "grayscale into an RGB stem")]
        if name in _HEADS:
            found.append(Case("torchvision", name, _wrong_head(build, _HEADS[name]), "3x64x64",
                              "a new head with the wrong in_features"))
    return found


# Where a fine-tuning script replaces the classifier, and the in_features it should have read.
_HEADS = {"resnet18": "fc", "mobilenet_v3_small": "classifier.3", "vgg11": "classifier.6",
          "densenet121": "classifier", "efficientnet_b0": "classifier.1", "regnet_y_400mf": "fc"}


def _wrong_head(build: Callable[[], nn.Module], attr: str) -> Callable[[], nn.Module]:
    """The fine-tuning mistake: a new head sized from memory (in_features halved), not from
    the old head's in_features."""
    def built() -> nn.Module:
        model = build()
        owner_name, _, last = attr.rpartition(".")
        owner = model.get_submodule(owner_name) if owner_name else model
        old = getattr(owner, last)
        setattr(owner, last, nn.Linear(old.in_features // 2, 5))
        return model
    return built


def _timm() -> list[Case]:
    import timm

    found = []
    for name, size in (("resnet18", 64), ("efficientnet_b0", 64), ("convnext_atto", 64), ("vit_tiny_patch16_224", 224)):
        build = (lambda name=name: timm.create_model(name, pretrained=False, num_classes=10))
        found += [Case("timm", name, build, f"3x{size}x{size}"),
                  Case("timm", name, build, f"{size}x{size}x3", "channels-last input"),
                  Case("timm", name, build, f"1x{size}x{size}", "grayscale into an RGB stem")]
    found.append(Case("timm", "vit_tiny_patch16_224", lambda: timm.create_model("vit_tiny_patch16_224", num_classes=10),
                      "3x256x256", "an input larger than the position table"))
    return found


def _libraries() -> list[Case]:
    """segmentation-models-pytorch, MONAI and diffusers, from config, when installed."""
    found: list[Case] = []
    try:
        import segmentation_models_pytorch as smp
    except ImportError:
        found.append(Case("segmentation-models-pytorch", "not installed", nn.Identity, "1"))
    else:
        for arch in ("Unet", "FPN", "DeepLabV3Plus", "UnetPlusPlus"):
            build = (lambda arch=arch: getattr(smp, arch)("resnet18", encoder_weights=None, classes=2))
            # smp's Unet runs at 65x65 (its decoder resizes to the skip's size): a clean case.
            odd = "an odd size into the U-Net" if arch != "Unet" else None
            found += [Case("segmentation-models-pytorch", arch, build, "3x64x64"),
                      Case("segmentation-models-pytorch", arch, build, "3x65x65", odd),
                      Case("segmentation-models-pytorch", arch, build, "1x64x64", "grayscale into an RGB stem")]
    try:
        from monai.networks.nets import UNet, BasicUNet
    except ImportError:
        found.append(Case("MONAI", "not installed", nn.Identity, "1"))
    else:
        unet = (lambda: UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(8, 16, 32), strides=(2, 2)))
        basic = (lambda: BasicUNet(spatial_dims=2, in_channels=1, out_channels=2, features=(8, 8, 16, 32, 64, 8)))
        found += [Case("MONAI", "UNet", unet, "1x64x64"), Case("MONAI", "UNet", unet, "1x66x66",
                                                                   "an odd size into the U-Net"),
                  Case("MONAI", "UNet", unet, "3x64x64", "RGB into a one-channel stem"),
                  Case("MONAI", "BasicUNet", basic, "1x64x64"),
                  Case("MONAI", "BasicUNet", basic, "3x64x64", "RGB into a one-channel stem")]
    try:
        from diffusers import UNet2DModel
    except ImportError:
        found.append(Case("diffusers", "not installed", nn.Identity, "1"))
    else:
        config = dict(sample_size=32, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(32, 64),
                      down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                      norm_num_groups=8)
        build = (lambda: UNet2DModel(**config))
        found += [Case("diffusers", "UNet2DModel", build, ["3x32x32", "scalar:int64"]),
                  Case("diffusers", "UNet2DModel", build, ["3x33x33", "scalar:int64"], "an odd size into the U-Net"),
                  Case("diffusers", "UNet2DModel", build, ["1x32x32", "scalar:int64"], "grayscale into an RGB stem")]
    return found


# -- the real forward -------------------------------------------------------------------------

@dataclass
class Real:
    outputs: tuple = ()
    modules: dict[str, tuple] = field(default_factory=dict)  # first call's output shapes
    error: str | None = None
    failing: str | None = None  # the innermost module whose forward raised
    failing_inputs: tuple = ()
    lines: frozenset[int] = frozenset()  # the model file's lines in the traceback


def _shapes(out: Any) -> tuple:
    if isinstance(out, torch.Tensor):
        return (tuple(out.shape),)
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, list | tuple):
        return tuple(s for item in out for s in _shapes(item))
    return tuple(s for item in vars(out).values() for s in _shapes(item)) if hasattr(out, "__dict__") else ()


def real_forward(model: nn.Module, case: Case) -> Real:
    read = read_inputs(case.input, None, case.options.get("batch_dim"))
    xs, named = make_arguments(read.specs, 2, "cpu")
    names = {id(m): n for n, m in model.named_modules()}
    stack: list[tuple[str, tuple]] = []
    real = Real()

    def enter(module: nn.Module, args: tuple) -> None:
        stack.append((names.get(id(module), "?"), _shapes(list(args))))

    def leave(module: nn.Module, args: tuple, out: Any) -> None:
        name, _ = stack.pop()
        real.modules.setdefault(name, _shapes(out))

    handles = [m.register_forward_pre_hook(enter) for m in model.modules()] + \
              [m.register_forward_hook(leave) for m in model.modules()]
    try:
        with torch.no_grad():
            real.outputs = _shapes(model(*xs, **named))
    except Exception as exc:  # the mistake's real failure
        real.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        real.failing, real.failing_inputs = stack[-1] if stack else (None, ())
        if case.file is not None:
            real.lines = frozenset(f.lineno for f in traceback.extract_tb(exc.__traceback__)
                                   if Path(f.filename).resolve() == case.file.resolve())
    finally:
        for handle in handles:
            handle.remove()
    return real


def _made_at(file: Path, module: nn.Module, name: str) -> frozenset[int]:
    """Lines of ``file`` that construct a module of this type, or assign ``self.<its attribute>``
    (``self.rnn = getattr(nn, rnn_type)(...)``): read with ast, not with shapecheck."""
    kind, attr = type(module).__name__, name.rpartition(".")[2]
    tree = ast.parse(file.read_text())
    calls = {node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call)
             and (getattr(node.func, "attr", None) == kind or getattr(node.func, "id", None) == kind)}
    assigned = {node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Attribute) and t.attr == attr for t in node.targets)}
    return frozenset(calls | assigned)


# -- one case ---------------------------------------------------------------------------------

def check(case: Case) -> Result:
    result = Result(case.source, case.model, case.mistake or "clean", _text(case.input), "ok")
    if case.model == "not installed":
        result.verdict = "not installed (see the module docstring)"
        return result
    torch.manual_seed(0)
    model = case.build().eval()
    real = real_forward(model, case)
    try:
        report = shapecheck.analyze(model, case.input, **case.options)
    except Exception as exc:
        result.verdict = f"crash: {type(exc).__name__}: {str(exc)[:160]}"
        return result
    return _clean(case, model, real, report, result) if case.mistake is None else _mistake(case, model, real, report,
                                                                                           result)


def _clean(case: Case, model: nn.Module, real: Real, report: Any, result: Result) -> Result:
    params = sum(p.numel() for p in model.parameters())
    rows = {}
    for layer in report.layers:
        if layer.kind == "module" and layer.depth:
            rows.setdefault(layer.name, layer.output_shapes)
    wrong = [name for name, shapes in real.modules.items() if name and name in rows and rows[name] != shapes]
    extra = [f for f in report.findings if f.code not in case.allowed]
    if real.error is not None:
        result.verdict = f"the real forward fails: {real.error}"
    elif report.outputs != real.outputs:
        result.verdict = f"wrong outputs {report.outputs} != {real.outputs}"
    elif report.totals.params != params:
        result.verdict = f"wrong params {report.totals.params:,} != {params:,}"
    elif wrong:
        result.verdict = f"wrong shapes at {', '.join(wrong[:3])}"
    elif extra:
        result.verdict = f"false finding {extra[0].code}: {extra[0].message[:120]}"
    return result


def _mistake(case: Case, model: nn.Module, real: Real, report: Any, result: Result) -> Result:
    first = report.errors[0] if report.errors else None
    if real.error is None:
        result.verdict = "the injected mistake runs for real: not a mistake"
        return result
    if first is None:
        result.verdict = f"missed: {real.error}"
        return result
    result.finding = f"{first.code} {first.message[:150]}"
    failed = next((l for l in report.layers if l.failed and l.is_leaf), None)
    named = {first.layer, failed.name if failed else None, failed.parent if failed else None}
    result.layer = f"{first.layer} (real: {real.failing or 'the model'})"
    on_module = real.failing in named or (real.failing == "" and report.model in named)
    if not on_module:
        result.verdict = f"blamed {first.layer}, the real failure is in {real.failing!r}"
        return result
    if failed is not None and failed.name == real.failing and failed.input_shapes[:1] != real.failing_inputs[:1]:
        result.verdict = f"{failed.name} received {real.failing_inputs[:1]}, the report says {failed.input_shapes[:1]}"
        return result
    return _located(case, model, real, first, result)


def _located(case: Case, model: nn.Module, real: Real, first: Any, result: Result) -> Result:
    if case.file is None:
        result.line = "n/a" if first.location is None else f"{first.location} (in a package)"
        return result
    if first.location is None or Path(first.location.path).resolve() != case.file.resolve():
        result.verdict = f"located at {first.location}, not in {case.file.name}"
        return result
    modules = dict(model.named_modules())
    failing = modules.get(real.failing or "")
    lines = real.lines | (_made_at(case.file, failing, real.failing or "") if failing is not None else frozenset())
    result.line = f"{case.file.name}:{first.location.line}"
    if first.location.line not in lines:
        result.verdict = f"line {first.location.line}, where the failure is at {sorted(lines)}"
    return result


def _text(spec: Any) -> str:
    return ", ".join(spec) if isinstance(spec, list) else str(spec)


# -- the panel, the results, the page ---------------------------------------------------------

def cases(sample: bool) -> list[Case]:
    if sample:
        return _fixtures() + _torchvision(["resnet18", "mobilenet_v3_small"])
    return _fixtures() + _torchvision(["resnet18", "mobilenet_v3_small", "vgg11", "densenet121", "efficientnet_b0",
                                       "regnet_y_400mf", "shufflenet_v2_x0_5", "squeezenet1_0", "googlenet",
                                       "convnext_tiny", "swin_t"]) + _timm() + _libraries()


def write_doc(rows: list[Result]) -> None:
    clean = [r for r in rows if r.mistake == "clean" and not r.verdict.startswith("not installed")]
    mistakes = [r for r in rows if r.mistake != "clean" and not r.verdict.startswith("not installed")]
    bad = [r for r in rows if r.verdict != "ok" and not r.verdict.startswith("not installed")]
    lines = [
        "# Outside code", "",
        "Models nobody here wrote, each checked against a real CPU forward at batch 2, clean and with",
        "a mistake people make injected (`benchmarks/outside.py`; its docstring says what is checked).",
        "The patterns of code that is not a package (pytorch-cifar, pytorch/examples, timm's ViT,",
        "diffusers' ResnetBlock2D) are fixtures written anew in `tests/fixtures/outside/`.", "",
        f"- clean models: {sum(r.verdict == 'ok' for r in clean)} of {len(clean)} exact (outputs, parameters, "
        "every module's shape) with no false finding;",
        f"- injected mistakes: {sum(r.verdict == 'ok' for r in mistakes)} of {len(mistakes)} found on the module "
        "that really fails, with the shapes it really received, and, for a model in a file of its own, at a line "
        "of that file (a finding inside an installed package keeps no location, by design: line n/a);",
        f"- crashes: {sum(r.verdict.startswith('crash') for r in rows)}.", "",
        "| source | model | mistake | input | verdict | blamed (real) | line |", "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r.source} | {r.model} | {r.mistake} | `{r.input}` | {r.verdict.replace('|', '/')} | "
              f"{r.layer.replace('|', '/')} | {r.line} |" for r in rows]
    if bad:
        lines += ["", "Not yet right:", ""] + [f"- {r.source} {r.model}, {r.mistake}: {r.verdict}" for r in bad]
    DOC.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", action="store_true", help="our fixtures and two torchvision models (CI)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--no-doc", action="store_true", help="write no docs/outside.md (the CI sample)")
    args = parser.parse_args(argv)
    if args.report_only:
        rows = [Result(**json.loads(line)) for line in args.results.read_text().splitlines() if line.strip()]
    else:
        os.chdir(ROOT)  # locations read tests/fixtures/outside/...
        rows = []
        for case in cases(args.sample):
            rows.append(check(case))
            print(f"{rows[-1].verdict[:60]:60} {case.source} {case.model} ({case.mistake or 'clean'})", flush=True)
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text("".join(json.dumps(asdict(r)) + "\n" for r in rows))
    if not args.no_doc:
        write_doc(rows)
    failures = [r for r in rows if r.verdict != "ok" and not r.verdict.startswith("not installed")]
    print(f"{len(rows) - len(failures)} of {len(rows)} ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
