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
