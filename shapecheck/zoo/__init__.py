"""Reference CNNs with their native input, class count and target accuracy.

Each entry is also a CLI target: ``shapecheck shapecheck.zoo:simple_cnn``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from shapecheck.zoo import models


@dataclass(frozen=True)
class ZooModel:
    name: str
    factory: Callable[[], nn.Module]
    input: str
    classes: tuple[int, ...]
    # None until measured: floors are set from real runs (docs/validation.md), never guessed.
    target_accuracy: float | None
    source: str
    binary: bool = False

    @property
    def num_outputs(self) -> int:
        return 1 if self.binary else len(self.classes)


ALL_CLASSES = tuple(range(10))
# CIFAR-10 label order: airplane automobile bird cat deer dog frog horse ship truck.
CAT, DOG = 3, 5

ZOO: dict[str, ZooModel] = {m.name: m for m in (
    ZooModel("simple_cnn", models.SimpleCNN, "3x32x32", ALL_CLASSES, 0.70, "course material"),
    ZooModel("tutorial_net", models.TutorialNet, "3x32x32", ALL_CLASSES, 0.60, "PyTorch CIFAR-10 tutorial"),
    ZooModel("quiz_cnn", models.QuizCNN, "3x64x64", (0, 1, 2, 3, 4), 0.77,
             "the correct 64x64 quiz answer; first 5 classes, resized to 64x64"),
    ZooModel("cat_dog_cnn", models.CatDogCNN, "3x150x150", (CAT, DOG), 0.66,
             "course Cat-vs-Dog net; CIFAR cat vs dog resized to 150x150", binary=True),
    ZooModel("resnet", models.ResNetCIFAR, "3x32x32", ALL_CLASSES, 0.935,
             "airbench / ResNet-9 family residual CNN"),
)}


# CLI targets: `shapecheck shapecheck.zoo:simple_cnn` builds the class like any other target.
simple_cnn = models.SimpleCNN
tutorial_net = models.TutorialNet
quiz_cnn = models.QuizCNN
cat_dog_cnn = models.CatDogCNN
resnet = models.ResNetCIFAR
