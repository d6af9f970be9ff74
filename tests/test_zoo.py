"""The reference zoo: its models, the CIFAR-10 loader, the shape cross-check and real training."""
from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
from torch import nn

import shapecheck
from shapecheck.cli import main
from shapecheck.zoo import ZOO
from shapecheck.zoo import data as cifar
from shapecheck.zoo import train as trainer
from tests.conftest import ROOT

ARCHIVE = Path(os.environ.get("SHAPECHECK_CIFAR10", ROOT.parent / "shared/datasets/cifar10-jpeg.tar.gz"))


@pytest.mark.parametrize("name", list(ZOO))
def test_every_zoo_model_is_clean_and_cross_checks_against_a_real_batch(name):
    spec = ZOO[name]
    model = spec.factory().eval()
    report = shapecheck.analyze(model, spec.input)
    assert report.errors == () and report.outputs == ((2, spec.num_outputs),)
    images = torch.randn(2, *map(int, spec.input.split("x")))
    assert trainer.cross_check(model, spec, report, images).startswith("passed")


class MetaLies(nn.Module):
    """A planted mismatch: the real forward differs from what the meta trace sees."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.pool(self.conv(x if x.is_meta else x[..., :-1, :]))


def test_cross_check_fails_loudly_on_a_planted_mismatch():
    from dataclasses import replace

    spec = replace(ZOO["simple_cnn"], name="meta_lies", factory=MetaLies)
    model = MetaLies()
    report = shapecheck.analyze(model, "3x32x32")
    with pytest.raises(AssertionError, match=r"shape cross-check failed for meta_lies: conv: predicted \[\(\(2, 4, 30, 30\),\)\], ran \[\(\(2, 4, 29, 30\),\)\]"):
        trainer.cross_check(model, spec, report, torch.randn(2, 3, 32, 32))


def test_zoo_models_are_cli_targets(capsys):
    assert main(["zoo"]) == 0
    assert "shapecheck.zoo:simple_cnn" in capsys.readouterr().out
    assert main(["shapecheck.zoo:cat_dog_cnn", "--input", "3x150x150"]) == 0
    assert "fc1 (Linear)" in capsys.readouterr().out


def _tree(root: Path, per_class: int = 3) -> None:
    from PIL import Image

    for split in ("train", "test"):
        for label, name in enumerate(("cat", "dog", "frog")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (32, 32), (label * 100, i * 10, 7)).save(folder / f"{i:04d}.png")


def test_loader_reads_an_image_tree_maps_classes_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("SHAPECHECK_CACHE", str(tmp_path / "cache"))
    _tree(tmp_path / "data")
    first = cifar.load(tmp_path / "data")
    assert first.classes == ("cat", "dog", "frog")
    assert first.train.images.shape == (9, 3, 32, 32) and first.train.images.dtype == torch.uint8
    assert first.train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert int(first.train.images[3, 0, 0, 0]) == 100  # dog's red channel
    cached = list((tmp_path / "cache").glob("cifar10-*.pt"))
    assert len(cached) == 1
    again = cifar.load(tmp_path / "data")
    assert torch.equal(again.train.images, first.train.images)
    (tmp_path / "data/train/cat/0000.png").unlink()  # a changed tree gets a new cache entry
    assert len(cifar.load(tmp_path / "data").train) == 8
    assert len(list((tmp_path / "cache").glob("cifar10-*.pt"))) == 2


def test_subset_relabels_and_resizes_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SHAPECHECK_CACHE", str(tmp_path / "cache"))
    _tree(tmp_path / "data")
    split = cifar.subset(cifar.load(tmp_path / "data").train, (0, 2), size=64)
    assert split.images.shape == (6, 3, 64, 64) and split.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert int(split.images[5, 0, 30, 30]) == 200  # a flat colour survives resizing


def test_augment_flips_and_crops_whole_batches():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).view(2, 3, 8, 8)
    out = cifar.augment(images, torch.Generator().manual_seed(0), pad=2)
    assert out.shape == images.shape and out.dtype == torch.uint8
    again = cifar.augment(images, torch.Generator().manual_seed(0), pad=2)
    assert torch.equal(out, again)
    flipped = cifar.augment(images, torch.Generator().manual_seed(1), pad=0)
    for i in range(2):
        assert torch.equal(flipped[i], images[i]) or torch.equal(flipped[i], images[i].flip(-1))


@pytest.mark.skipif(not ARCHIVE.exists(), reason=f"CIFAR-10 archive not found at {ARCHIVE}")
def test_simple_cnn_reaches_55_percent_after_one_epoch_on_real_cifar10():
    result = trainer.train("simple_cnn", cifar.load(ARCHIVE), epochs=1)
    assert result.test_accuracy >= 0.55, result.history
    assert result.cross_check.startswith("passed")
    assert result.params == 25_578


def test_the_gpu_recipe_runs_on_cpu_too_channels_last_and_bf16():
    """The CUDA defaults (channels_last, bf16 autocast) exercised on CPU, on random images."""
    g = torch.Generator().manual_seed(0)
    split = lambda n: cifar.Split(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),  # noqa: E731
                                  torch.randint(0, 10, (n,), generator=g))
    dataset = cifar.Dataset(split(64), split(32), cifar.CLASSES, "random")
    accel = trainer.Accel(channels_last=True, bf16=True, compile=False)
    result = trainer.train("tutorial_net", dataset, epochs=1, accel=accel)
    assert result.accel == {"channels_last": True, "bf16": True, "compile": False}
    assert result.cross_check.startswith("passed")
    assert math.isfinite(result.history[0]["train_loss"]) and 0 <= result.test_accuracy <= 1
    assert trainer.Accel.default("cuda", trainer.RECIPES["resnet"]) == trainer.Accel(True, True, True)
    # SimpleCNN's x.view(x.size(0), -1) cannot read a channels_last map.
    assert trainer.Accel.default("cuda", trainer.RECIPES["simple_cnn"]) == trainer.Accel(False, True, True)
    assert trainer.Accel.default("cpu", trainer.RECIPES["resnet"]) == trainer.Accel()
