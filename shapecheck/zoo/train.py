"""Train a zoo model on CIFAR-10 and cross-check shapecheck's predictions against what runs."""
from __future__ import annotations

import json
import math
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import shapecheck
from shapecheck.report import Report
from shapecheck.verify import real_module_shapes, traced_module_shapes, unique_params
from shapecheck.zoo import ZOO, ZooModel
from shapecheck.zoo import data as cifar


@dataclass(frozen=True)
class Recipe:
    batch_size: int
    lr: float
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    # SimpleCNN and QuizCNN `view` their feature maps, which a channels_last tensor cannot do.
    channels_last: bool = False


RECIPES = {
    "simple_cnn": Recipe(64, 0.05),
    "tutorial_net": Recipe(32, 0.03, channels_last=True),
    "quiz_cnn": Recipe(64, 0.03),
    "cat_dog_cnn": Recipe(64, 0.01, channels_last=True),
    "resnet": Recipe(512, 0.2, 5e-4, 0.2, channels_last=True),
}


@dataclass(frozen=True)
class Accel:
    """What a training run uses beyond plain fp32: on by default on CUDA, off on CPU."""

    channels_last: bool = False
    bf16: bool = False
    compile: bool = False

    @classmethod
    def default(cls, device: str, recipe: Recipe | None = None) -> Accel:
        on = device.startswith("cuda")
        return cls(channels_last=on and recipe is not None and recipe.channels_last, bf16=on, compile=on)


@dataclass
class Result:
    model: str
    params: int
    macs_per_sample: int
    input: str
    epochs: int
    seed: int
    device: str
    test_accuracy: float = 0.0
    wall_time_s: float = 0.0
    images_per_s: float = 0.0
    cross_check: str = ""
    accel: dict[str, bool] = field(default_factory=dict)
    torch_version: str = torch.__version__
    hardware: str = field(default_factory=lambda: f"{platform.machine()} {platform.processor() or ''}".strip())
    history: list[dict[str, float]] = field(default_factory=list)


def cross_check(model: nn.Module, spec: ZooModel, report: Report, images: torch.Tensor) -> str:
    """``report``'s per-layer shapes and parameters must equal a real forward of ``images`` exactly."""
    if report.errors:
        raise AssertionError(f"shapecheck reports errors for {spec.name}: {report.errors}")
    predicted, real = traced_module_shapes(report), real_module_shapes(model, images)
    if predicted != real:
        differing = sorted(n for n in predicted.keys() | real.keys() if predicted.get(n) != real.get(n))
        raise AssertionError(f"shape cross-check failed for {spec.name}: " + "; ".join(
            f"{n}: predicted {predicted.get(n)}, ran {real.get(n)}" for n in differing))
    params = unique_params(model)
    if report.totals.params != params:
        raise AssertionError(f"parameter count: predicted {report.totals.params}, model has {params}")
    return f"passed: {sum(map(len, real.values()))} layer calls and {params:,} parameters equal the first real batch"


def train(name: str, dataset: cifar.Dataset, epochs: int, device: str = "cpu", seed: int = 0,
          progress: Callable[[str], None] | None = None, limit: int | None = None,
          accel: Accel | None = None) -> Result:
    spec, recipe = ZOO[name], RECIPES[name]
    accel = accel or Accel.default(device, recipe)
    torch.manual_seed(seed)
    size = int(spec.input.split("x")[-1])
    # Decoded, subset and resized once, then moved to the device once: no per-batch copies.
    train_split = _on(_prepare(dataset.train, spec, size, limit), device)
    test_split = _on(_prepare(dataset.test, spec, size, None), device)
    model = spec.factory().to(device)
    first = cifar.normalize(train_split.images[: recipe.batch_size])
    report = shapecheck.analyze(model, spec.input, batch=len(first))
    result = Result(name, report.totals.params, report.totals.macs // len(first), spec.input, epochs, seed, device,
                    accel=asdict(accel))
    result.cross_check = cross_check(model, spec, report, first)  # on the eager fp32 model
    if accel.channels_last:
        model = model.to(memory_format=torch.channels_last)
    step = torch.compile(model) if accel.compile else model
    model.train()
    steps = epochs * math.ceil(len(train_split) / recipe.batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True,
                                weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.lr, total_steps=steps, pct_start=0.25)
    run = _Run(step, spec, recipe, optimizer, schedule, accel, device, progress)
    order = torch.Generator().manual_seed(seed)
    # On CPU one stream serves both, as in the committed runs; augmentation on a GPU needs its own.
    flips = order if device == "cpu" else torch.Generator(device=device).manual_seed(seed)
    start = time.perf_counter()
    for epoch in range(epochs):
        loss, correct, seen, tick = run.epoch(train_split, order, flips, epoch, epochs)
        accuracy = evaluate(step, spec, test_split, device, accel=accel)
        result.history.append({"epoch": epoch + 1, "train_loss": loss, "train_accuracy": correct / seen,
                               "test_accuracy": accuracy, "images_per_s": seen / tick})
    result.wall_time_s = time.perf_counter() - start
    result.test_accuracy = result.history[-1]["test_accuracy"]
    result.images_per_s = epochs * len(train_split) / result.wall_time_s
    return result


def _on(split: cifar.Split, device: str) -> cifar.Split:
    return cifar.Split(split.images.to(device), split.labels.to(device))


def _prepare(split: cifar.Split, spec: ZooModel, size: int, limit: int | None) -> cifar.Split:
    part = cifar.subset(split, spec.classes, size if size != 32 else None)
    return cifar.Split(part.images[:limit], part.labels[:limit]) if limit else part


def _loss(spec: ZooModel, recipe: Recipe, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if spec.binary:
        return F.binary_cross_entropy_with_logits(logits.squeeze(1), labels.float())
    return F.cross_entropy(logits, labels, label_smoothing=recipe.label_smoothing)


def _predict(spec: ZooModel, logits: torch.Tensor) -> torch.Tensor:
    return (logits.squeeze(1) > 0).long() if spec.binary else logits.argmax(1)


@dataclass
class _Run:
    model: nn.Module
    spec: ZooModel
    recipe: Recipe
    optimizer: Any
    schedule: Any
    accel: Accel
    device: str
    progress: Callable[[str], None] | None

    def epoch(self, split: cifar.Split, order: torch.Generator, flips: torch.Generator, epoch: int,
              epochs: int) -> tuple[float, int, int, float]:
        total_loss, correct, seen, start = 0.0, 0, 0, time.perf_counter()
        for images, labels in cifar.batches(split, self.recipe.batch_size, order):
            x = _layout(cifar.normalize(cifar.augment(images, flips)), self.accel)
            with _autocast(self.device, self.accel):
                logits = self.model(x)
                loss = _loss(self.spec, self.recipe, logits.float(), labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.schedule.step()
            total_loss += loss.item() * len(labels)
            correct += int((_predict(self.spec, logits) == labels).sum())
            seen += len(labels)
            if self.progress is not None:
                rate = seen / (time.perf_counter() - start)
                self.progress(f"epoch {epoch + 1}/{epochs} [{seen}/{len(split)}] loss {total_loss / seen:.3f} "
                              f"acc {correct / seen:.3f} {rate:.0f} img/s")
        return total_loss / seen, correct, seen, time.perf_counter() - start


def _layout(x: torch.Tensor, accel: Accel) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if accel.channels_last else x


def _autocast(device: str, accel: Accel) -> Any:
    return torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=accel.bf16)


def evaluate(model: nn.Module, spec: ZooModel, split: cifar.Split, device: str, batch_size: int = 1000,
             accel: Accel | None = None) -> float:
    accel = accel or Accel()
    model.eval()
    correct = 0
    with torch.no_grad(), _autocast(device, accel):
        for images, labels in cifar.batches(split, batch_size):
            logits = model(_layout(cifar.normalize(images), accel))
            correct += int((_predict(spec, logits) == labels).sum())
    model.train()
    return correct / len(split)


def write(result: Result, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{result.model}-seed{result.seed}.json"
    path.write_text(json.dumps(asdict(result), indent=2) + "\n")
    _plot(result, out / f"{result.model}-seed{result.seed}.png")
    return path


def _plot(result: Result, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are the optional [plots] extra
        print("matplotlib not installed: no curve PNG (pip install 'torch-shapecheck[plots]')", file=sys.stderr)
        return
    epochs = [h["epoch"] for h in result.history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(epochs, [h["train_loss"] for h in result.history], marker="o")
    left.set(title=f"{result.model}: training loss", xlabel="epoch")
    right.plot(epochs, [h["train_accuracy"] for h in result.history], marker="o", label="train")
    right.plot(epochs, [h["test_accuracy"] for h in result.history], marker="o", label="test")
    right.set(title="accuracy", xlabel="epoch")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
