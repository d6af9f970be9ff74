"""CIFAR-10 as uint8 tensors: decoded once, cached on disk, augmented on whole batches.

Sources, in order: an image-folder tree or a ``.tar.gz`` of one (``train/<class>/*.jpg``,
``test/<class>/*.jpg``) given by ``path`` or ``$SHAPECHECK_CIFAR10``; otherwise
``torchvision.datasets.CIFAR10(download=True)``, the default on a machine with internet.
"""
from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8 (N, 3, H, W)
    labels: torch.Tensor  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Dataset:
    train: Split
    test: Split
    classes: tuple[str, ...]
    source: str


def cache_dir() -> Path:
    return Path(os.environ.get("SHAPECHECK_CACHE", Path.home() / ".cache" / "shapecheck"))


def load(path: str | os.PathLike[str] | None = None, *, download_root: str | None = None) -> Dataset:
    """All of CIFAR-10, from the local copy when one is named, else torchvision's download."""
    path = path or os.environ.get("SHAPECHECK_CIFAR10")
    if path is None:
        return _torchvision(download_root or str(cache_dir() / "torchvision"))
    source = Path(path)
    if not source.exists():
        raise FileNotFoundError(f"no CIFAR-10 copy at {source}; pass --data PATH or set SHAPECHECK_CIFAR10")
    cached = cache_dir() / f"cifar10-{_digest(source)}.pt"
    if cached.exists():
        data = torch.load(cached, weights_only=True)
    else:
        data = _decode(source)
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        torch.save(data, tmp)
        tmp.replace(cached)  # atomic: a killed run never leaves a half-written cache
    classes = tuple(data["classes"])
    return Dataset(Split(data["train_x"], data["train_y"]), Split(data["test_x"], data["test_y"]),
                   classes, str(source))


def subset(split: Split, classes: tuple[int, ...], size: int | None = None) -> Split:
    """Keep ``classes`` (relabelled 0..k-1) and resize once, not per batch."""
    keep = torch.isin(split.labels, torch.tensor(classes))
    images, labels = split.images[keep], split.labels[keep]
    remap = torch.full((int(split.labels.max()) + 1,), -1, dtype=torch.long)
    remap[torch.tensor(classes)] = torch.arange(len(classes))
    if size is not None and size != images.shape[-1]:
        images = resize(images, size)
    return Split(images, remap[labels])


def resize(images: torch.Tensor, size: int, chunk: int = 2048) -> torch.Tensor:
    parts = []
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].float()
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        parts.append(x.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(parts)


def normalize(images: torch.Tensor) -> torch.Tensor:
    x = images.float().div_(255)
    return (x - MEAN.to(x.device)) / STD.to(x.device)


def augment(images: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random horizontal flip and pad-and-crop on a whole batch, as the CIFAR-10 speed records do."""
    n, _, h, w = images.shape
    flip = torch.rand(n, generator=generator, device=images.device) < 0.5
    images = torch.where(flip.view(n, 1, 1, 1), images.flip(-1), images)
    if pad == 0:
        return images
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=images.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=images.device)
    rows = (dy.view(n, 1) + torch.arange(h, device=images.device)).view(n, 1, h, 1)
    cols = (dx.view(n, 1) + torch.arange(w, device=images.device)).view(n, 1, 1, w)
    batch = torch.arange(n, device=images.device).view(n, 1, 1, 1)
    channel = torch.arange(images.shape[1], device=images.device).view(1, -1, 1, 1)
    return padded[batch, channel, rows, cols]


def batches(split: Split, batch_size: int, generator: torch.Generator | None = None,
            drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    order = torch.randperm(len(split), generator=generator) if generator is not None else torch.arange(len(split))
    stop = len(split) - (len(split) % batch_size if drop_last else 0)
    for start in range(0, stop, batch_size):
        index = order[start:start + batch_size]
        yield split.images[index], split.labels[index]


def _digest(source: Path) -> str:
    """sha256 of the archive, or of an image tree's names and sizes; names the cache file."""
    h = hashlib.sha256()
    if source.is_file():
        with open(source, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
    else:
        for file in sorted(source.rglob("*")):
            if file.suffix.lower() in _IMAGE_SUFFIXES:
                h.update(f"{file.relative_to(source)}:{file.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def _decode(source: Path) -> dict[str, object]:
    files = dict(_read_archive(source) if source.is_file() else _read_tree(source))
    classes = sorted({name.split("/")[1] for name in files})
    out: dict[str, object] = {"classes": classes}
    for split in ("train", "test"):
        names = sorted(n for n in files if n.startswith(f"{split}/"))
        if not names:
            raise ValueError(f"{source} has no {split}/<class>/ images")
        out[f"{split}_x"] = torch.stack([_decode_image(files[n]) for n in names])
        out[f"{split}_y"] = torch.tensor([classes.index(n.split("/")[1]) for n in names])
    return out


def _read_archive(source: Path) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(source) as archive:
        for member in archive:
            name = _relative(member.name)
            if member.isfile() and name is not None:
                handle = archive.extractfile(member)
                if handle is not None:
                    yield name, handle.read()


def _read_tree(source: Path) -> Iterator[tuple[str, bytes]]:
    for file in source.rglob("*"):
        name = _relative(str(file.relative_to(source)))
        if file.is_file() and name is not None:
            yield name, file.read_bytes()


def _relative(name: str) -> str | None:
    """``[prefix/]train/<class>/<file>.jpg`` -> ``train/<class>/<file>.jpg``."""
    parts = Path(name).parts
    for i, part in enumerate(parts):
        if part in ("train", "test") and len(parts) - i == 3 and name.lower().endswith(_IMAGE_SUFFIXES):
            return "/".join(parts[i:])
    return None


def _decode_image(data: bytes) -> torch.Tensor:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
        return torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(rgb.height, rgb.width, 3).permute(2, 0, 1)


def _torchvision(root: str) -> Dataset:
    from torchvision.datasets import CIFAR10

    splits = []
    for train in (True, False):
        ds = CIFAR10(root, train=train, download=True)
        splits.append(Split(torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(),
                            torch.tensor(ds.targets)))
    return Dataset(splits[0], splits[1], CLASSES, f"torchvision CIFAR10 at {root}")
