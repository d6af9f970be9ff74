"""The one registry of rule codes. Docs, --select/--ignore and renderers all read it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shapecheck.report import Finding, Fix, Location, Severity


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: Severity
    summary: str
    what: str
    why: str
    example: str
    use_instead: str
    enabled: bool = True

    def finding(self, message: str, location: Location | None = None, *, layer: str | None = None,
                called_at: Location | None = None, hint: str | None = None,
                fix: Fix | None = None, **_: Any) -> Finding:
        return Finding(self.code, self.severity, message, location, layer,
                       called_at if called_at != location else None, hint, fix)


RULES: dict[str, Rule] = {}


def register(rule: Rule) -> Rule:
    if rule.code in RULES:
        raise ValueError(f"duplicate rule code {rule.code}")
    RULES[rule.code] = rule
    return rule


def known(codes: tuple[str, ...], option: str) -> tuple[str, ...]:
    """``codes`` when each names a rule or a prefix of one; a typo would otherwise silently
    select nothing (every finding dropped, a broken model passing) or ignore nothing."""
    unknown = [c for c in codes if not any(rule.startswith(c) for rule in RULES)]
    if unknown:
        from shapecheck.errors import UsageError

        raise UsageError(f"{option} {', '.join(unknown)} matches no rule; the codes are "
                         f"{', '.join(sorted(RULES))} (a prefix such as SHP0 selects a group)")
    return codes


def selected(code: str, select: tuple[str, ...] = (), ignore: tuple[str, ...] = ()) -> bool:
    """flake8's semantics: the longest matching prefix of --select or --ignore wins."""
    rule = RULES.get(code)
    chosen = max((p for p in select if code.startswith(p)), key=len, default=None)
    dropped = max((p for p in ignore if code.startswith(p)), key=len, default=None)
    if chosen is None and dropped is None:
        # An explicit --select is the whole list; otherwise each rule's default applies.
        return not select and (rule.enabled if rule else True)
    return len(chosen or "") > len(dropped or "")


LINEAR_MISMATCH = register(Rule(
    "SHP001", "linear-in-features-mismatch", "error",
    "Linear expects in_features=N but receives M",
    what="Checks that every `nn.Linear` receives as many features as its `in_features` declares.",
    why=("The flattened size after a conv stack is easy to get wrong by hand: floor division in "
         "convolutions and pooling loses a row here and there. PyTorch reports only "
         "`mat1 and mat2 shapes cannot be multiplied (1x3380 and 2880x50)`, without naming the layer."),
    example=("self.conv2 = nn.Conv2d(10, 20, 5)\nself.fc1 = nn.Linear(20 * 12 * 12, 50)  "
             "# 64x64 input: the map is really 20x13x13"),
    use_instead="self.fc1 = nn.Linear(20 * 13 * 13, 50)\n# or, for any input size:\nself.fc1 = nn.LazyLinear(50)",
))
CHANNEL_MISMATCH = register(Rule(
    "SHP002", "channel-mismatch", "error",
    "Conv or norm layer expects C channels but receives C'",
    what="Checks `in_channels` of convolutions and `num_features` of norm layers against the channels they receive.",
    why="A layer that declares other channels than its predecessor produces fails at run time, or, after an edit, silently mismatches the checkpoint.",
    example="self.conv1 = nn.Conv2d(3, 16, 3)\nself.conv2 = nn.Conv2d(32, 64, 3)",
    use_instead="self.conv1 = nn.Conv2d(3, 16, 3)\nself.conv2 = nn.Conv2d(16, 64, 3)",
))
INVALID_RESHAPE = register(Rule(
    "SHP003", "invalid-reshape", "error",
    "view/reshape cannot produce the requested shape",
    what="Checks that `view`, `reshape` and `flatten` calls in `forward` ask for a size the tensor has.",
    why="A hard-coded size such as `x.view(-1, 20 * 12 * 12)` fails as soon as the input or a layer changes.",
    example="x = x.view(-1, 20 * 12 * 12)",
    use_instead="x = x.flatten(1)  # or x.view(x.size(0), -1)",
))
INPUT_TOO_SMALL = register(Rule(
    "SHP005", "input-too-small", "error",
    "a spatial size shrinks below a kernel or to zero",
    what="Checks that every convolution and pooling layer receives a map at least as large as its kernel.",
    why="Each unpadded convolution and each pooling shrinks the map; a small input runs out of pixels before the classifier.",
    example="# 3x16x16 input\nself.conv1 = nn.Conv2d(3, 10, 5)  # 12\nself.pool = nn.MaxPool2d(2, 2)    # 6, 1 after the second block",
    use_instead="# feed a larger input, pad the convolutions, or drop a pooling stage\nself.conv1 = nn.Conv2d(3, 10, 5, padding=2)",
))
CHANNELS_LAST = register(Rule(
    "SHP006", "channels-last-input", "error",
    "the input looks like [H, W, C]; PyTorch expects [C, H, W]",
    what="Detects an input whose last dimension, not its first, matches the first layer's channels.",
    why="Images loaded with PIL, OpenCV or NumPy are height x width x channels; convolutions read dimension 1 of [B, C, H, W] as channels.",
    example="x = torch.from_numpy(image)  # [B, 64, 64, 3]\nmodel(x)",
    use_instead="x = torch.from_numpy(image).permute(0, 3, 1, 2)  # [B, 3, 64, 64]",
))
OUTPUT_MISMATCH = register(Rule(
    "SHP007", "output-shape-mismatch", "error",
    "the model's output differs from the expected shape",
    what="Compares the model's output (without the batch) with the shape given by `--output`.",
    why="A classifier with the wrong number of logits trains without error against some losses and silently learns nonsense.",
    example="self.fc2 = nn.Linear(50, 10)  # but the task has 5 classes; --output 5",
    use_instead="self.fc2 = nn.Linear(50, 5)",
))
FORWARD_ERROR = register(Rule(
    "SHP008", "forward-error", "error",
    "the model's own code raised an exception",
    what="Reports exceptions from the user's code in `forward` that are not shape errors, such as a missing import.",
    why="A forward that cannot run cannot be trained; the traceback from a deep stack rarely shows the user's line first.",
    example="x = self.pool(F.relu(self.conv1(x)))  # F was never imported",
    use_instead="import torch.nn.functional as F",
))
SHAPE_ERROR = register(Rule(
    "SHP009", "shape-error", "error",
    "a layer or op raised a shape error",
    what="Reports any other shape error raised by a layer or op, with the shapes it received.",
    why="Broadcasting, concatenation and attention errors name no layer; this finding does.",
    example="out = torch.cat([a, b], dim=1)  # a is 16x16, b is 15x15",
    use_instead="b = F.interpolate(b, size=a.shape[-2:])\nout = torch.cat([a, b], dim=1)",
))
BATCH_FOLDED = register(Rule(
    "SHP004", "batch-folded", "error",
    "a reshape mixes the batch dimension into the features",
    what=("Traces the model at two batch sizes and checks that every `view`/`reshape`/`flatten` keeps "
          "one leading row per sample."),
    why=("`x.view(-1, 10 * 13 * 13)` on a [B, 20, 13, 13] map runs without error and returns 2B rows "
         "of half a sample each. The loss then compares the wrong rows with the labels, and training "
         "quietly fails. A hard-coded batch (`x.view(64, -1)`) breaks on the last, smaller batch."),
    example="x = x.view(-1, 10 * 13 * 13)  # the map is 20x13x13",
    use_instead="x = x.flatten(1)  # or x.view(x.size(0), -1)",
))
DROPPED_PIXELS = register(Rule(
    "SHP101", "dropped-pixels", "warning",
    "a strided window never reads the last rows or columns of its input",
    what=("Checks every convolution and pooling layer for input rows and columns that no window covers "
          "because of floor division."),
    why=("`MaxPool2d(2, 2)` on a 75x75 map returns 37x37 and ignores the last row and column. Nothing "
         "fails, but information at the border is thrown away, and the map no longer lines up with the "
         "input for dense prediction."),
    example="# 3x150x150 input: 150 -> 75, then\nself.pool = nn.MaxPool2d(2, 2)  # 75 -> 37, the last row is lost",
    use_instead="self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)  # 75 -> 38\n# or pad, or choose an input size that divides evenly",
))
UNUSED_SUBMODULE = register(Rule(
    "SHP102", "unused-submodule", "warning",
    "a submodule is defined in __init__ but never called",
    what="Lists submodules, with their parameter counts, that the traced forward never calls or reads.",
    why=("Unused layers still count in `parameters()`, take optimizer state and checkpoint space, and "
         "often mean a forgotten line in `forward`."),
    example="self.dropout = nn.Dropout(0.5)  # forward never calls self.dropout",
    use_instead="x = self.dropout(x)  # call it, or delete the attribute",
))
BIAS_BEFORE_NORM = register(Rule(
    "SHP103", "bias-before-batchnorm", "warning",
    "a conv or linear layer with bias feeds BatchNorm directly",
    what="Finds `Conv`/`Linear` layers with `bias=True` whose output goes straight into BatchNorm.",
    why="BatchNorm subtracts each channel's mean, which cancels any constant bias: those parameters train to no effect.",
    example="self.conv = nn.Conv2d(3, 16, 3)\nself.bn = nn.BatchNorm2d(16)",
    use_instead="self.conv = nn.Conv2d(3, 16, 3, bias=False)\nself.bn = nn.BatchNorm2d(16)",
))
SOFTMAX_OUTPUT = register(Rule(
    "SHP104", "softmax-output", "warning",
    "the model ends in softmax or log-softmax",
    what="Checks whether the model's last operation is a softmax or log-softmax.",
    why=("`nn.CrossEntropyLoss` applies log-softmax itself. A model that already ends in softmax "
         "computes a double softmax: gradients shrink and training stalls. Log-softmax is right only "
         "with `nn.NLLLoss`."),
    example="return F.softmax(self.fc2(x), dim=1)",
    use_instead="return self.fc2(x)  # logits; apply softmax only for predictions",
))
DOMINANT_LINEAR = register(Rule(
    "SHP105", "dominant-linear", "info",
    "one Linear layer after a flatten holds most of the parameters",
    what="Reports a `Linear` fed by a flattened feature map that holds at least half of all parameters.",
    why=("Flattening a large map into a dense layer multiplies its size by every pixel; the model "
         "overfits and is tied to one input size. Global pooling keeps the features and drops the pixels."),
    example="self.fc1 = nn.Linear(32 * 37 * 37, 128)  # 5.6M of 5.6M parameters",
    use_instead="self.pool = nn.AdaptiveAvgPool2d(1)\nself.fc1 = nn.Linear(32, 128)",
))
FIXED_INPUT_SIZE = register(Rule(
    "SHP106", "fixed-input-size", "info",
    "a hard-coded flatten size ties the model to a few input sizes",
    what="Reports a `Linear` whose `in_features` counts the pixels of a flattened map, with the input sizes it fits.",
    why="The model fails on any other input size, and the number must be recomputed by hand after every change to the conv stack.",
    example="self.fc1 = nn.Linear(32 * 8 * 8, 10)  # only 32x32 to 35x35 inputs",
    use_instead="self.pool = nn.AdaptiveAvgPool2d((8, 8))  # any input of at least 8x8\nself.fc1 = nn.Linear(32 * 8 * 8, 10)\n# or nn.LazyLinear(10)",
))
RNN_BATCH_FIRST = register(Rule(
    "SHP107", "rnn-reads-batch-as-time", "warning",
    "an RNN with batch_first=False receives the batch in dimension 0",
    what=("Checks that every `RNN`, `LSTM` and `GRU` built with `batch_first=False` (PyTorch's default) "
          "receives `[T, B, F]`, not a batch-first `[B, T, F]` input."),
    why=("With `batch_first=False` dimension 0 is time. Fed `[B, T, F]`, the layer runs across the "
         "samples of the batch as if they were time steps: nothing fails, the output is the same size, "
         "and the model learns from sequences that mix unrelated samples."),
    example="self.gru = nn.GRU(16, 32)\n...\nout, _ = self.gru(x)  # x is [B, T, 16]",
    use_instead="self.gru = nn.GRU(16, 32, batch_first=True)\n# or: out, _ = self.gru(x.transpose(0, 1))",
))
DECODER_OFF_BY = register(Rule(
    "SHP108", "decoder-size-off", "warning",
    "a decoder's output misses the input's size by a few pixels",
    what=("Compares a model's spatial output (an autoencoder's reconstruction, a segmentation map) with its "
          "input and reports an output a few pixels smaller or larger, naming the transposed convolutions "
          "and their arithmetic."),
    why=("Floor division on the way down and `(in - 1)*s - 2p + k` on the way up need not meet: 24x24 "
         "becomes 23x23. A loss against the input then fails, or a crop or interpolate added to silence it "
         "shifts every pixel."),
    example="self.up = nn.ConvTranspose2d(16, 3, 3, stride=2, padding=1)  # 12 -> 23",
    use_instead="self.up = nn.ConvTranspose2d(16, 3, 3, stride=2, padding=1, output_padding=1)  # 12 -> 24",
))
OUTPUT_LOSES_BATCH = register(Rule(
    "SHP109", "output-loses-batch", "warning",
    "the model's output does not follow the batch",
    what=("Traces the model at a second batch size when its output does not start with the batch, and "
          "reports an output whose first dimension does not follow it."),
    why=("A loss compares the output with one target per sample. An output that lost the batch (a mean "
         "over dimension 0, `x[0]`, a time-first RNN read at the wrong axis) still broadcasts against the "
         "targets or trains on the wrong rows, without an error."),
    example="return self.head(x).mean(0)  # [classes]: averaged over the batch",
    use_instead="return self.head(x.mean(1))  # [B, classes]: averaged over time, per sample",
))
PARAMS_BUDGET = register(Rule(
    "SHP201", "params-budget", "error",
    "the model has more parameters than its budget",
    what="Compares the unique parameter count with `--max-params` (or `max_params` in the config).",
    why="A budget in CI catches the edit that quietly multiplies a layer's size before it reaches a device that cannot hold it.",
    example="shapecheck model.py:Net --input 3x150x150 --max-params 1M  # CatDogCNN has 5.6M",
    use_instead="self.pool = nn.AdaptiveAvgPool2d(1)  # shrink the dominant layer",
))
MACS_BUDGET = register(Rule(
    "SHP202", "macs-budget", "error",
    "the model needs more multiply-accumulates per sample than its budget",
    what="Compares MACs per sample (as `torch.utils.flop_counter` counts them, halved) with `--max-macs`.",
    why="Latency on a target device follows compute; a budget keeps a model within it as it evolves.",
    example="shapecheck model.py:Net --input 3x224x224 --max-macs 600M",
    use_instead="# reduce width or resolution, or stride earlier",
))
MEMORY_BUDGET = register(Rule(
    "SHP203", "activation-memory-budget", "error",
    "the activations of one batch exceed the memory budget",
    what="Compares activation memory (every leaf layer's output, for the traced batch and dtype) with `--max-activation-memory`.",
    why="Out-of-memory errors appear only on the device; the meta trace predicts them for free.",
    example="shapecheck model.py:Net --input 3x1024x1024 --batch 16 --max-activation-memory 8GiB",
    use_instead="# smaller batch, lower resolution, bfloat16 (--dtype bfloat16) or checkpointing",
))
CHECKPOINT_MISMATCH = register(Rule(
    "SHP301", "checkpoint-shape-mismatch", "error",
    "a checkpoint tensor has another shape than the model's",
    what=("With `--checkpoint`, compares every saved tensor's shape with the model's, and for a Linear "
          "says which input size the checkpoint was trained on."),
    why=("`load_state_dict` fails with `size mismatch for fc1.weight: copying a param with shape "
         "torch.Size([50, 2880])`, which says nothing about why. Usually the model was trained on "
         "another input size, or a layer was edited since."),
    example="shapecheck model.py:Net --input 3x64x64 --checkpoint weights.pt  # trained on 60x60",
    use_instead="shapecheck model.py:Net --input 3x60x60 --checkpoint weights.pt",
))
CHECKPOINT_MISSING = register(Rule(
    "SHP302", "checkpoint-missing-keys", "error",
    "the checkpoint lacks tensors the model has",
    what="With `--checkpoint`, lists the model's parameters and buffers that the checkpoint does not contain.",
    why="A strict load fails; a non-strict load silently leaves those layers at their random initialisation.",
    example="self.fc3 = nn.Linear(10, 10)  # added after the checkpoint was saved",
    use_instead="model.load_state_dict(state, strict=False)  # only if the new layers should train from scratch",
))
CHECKPOINT_UNEXPECTED = register(Rule(
    "SHP303", "checkpoint-unexpected-keys", "warning",
    "the checkpoint has tensors the model does not",
    what="With `--checkpoint`, lists saved tensors that no parameter or buffer of the model matches.",
    why="Renamed or removed layers leave their trained weights behind unused.",
    example="# checkpoint saved with self.classifier, model now calls it self.fc",
    use_instead="state = {k.replace('classifier.', 'fc.'): v for k, v in state.items()}",
))
