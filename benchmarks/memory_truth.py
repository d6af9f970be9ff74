"""The real peak memory of one training step: the ground truth the memory planner (issue 26)
is to be measured against. Writes JSON lines, one per model and device.

    .venv/bin/python benchmarks/memory_truth.py --device cpu                  # torch.profiler's timeline
    python3 benchmarks/memory_truth.py --device cuda --out $OUT/truth.jsonl   # max_memory_allocated

One step, as the issue defines it: ``zero_grad(set_to_none=True)``, forward, loss, backward,
``optimizer.step()``; measured on the second step, when the optimizer's state exists. The loss
is ``F.cross_entropy`` on the output against integer targets (per pixel for a segmenter, per
token for a language model), or ``"mse"`` where a case says so.

- **cuda**: ``torch.cuda.max_memory_allocated()`` over the second step, after
  ``reset_peak_memory_stats()``; the caching allocator rounds each block up to 512 bytes, and
  the first matmul's cuBLAS workspace is allocated in the warm-up step, so it is in the
  baseline (``before``) and the peak, as it is in any real run. Deterministic and one stream.
- **cpu**: the maximum over time of the total of torch.profiler's memory timeline
  (``profile_memory=True, record_shapes=True, with_stack=True``), one thread; the timeline
  starts with the tensors alive before the step, so its total is the process's.

Each row keeps what was alive before the step (parameters, optimizer state, inputs) apart
from the peak, so an estimate's breakdown can be compared part by part.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], nn.Module]
    shape: tuple[int, ...]  # the whole input, batch included
    optimizer: str = "adamw"
    dtype: torch.dtype = torch.float32  # of the input; integer for token ids
    loss: str = "cross_entropy"


class MLP(nn.Module):
    def __init__(self, width: int = 1024, depth: int = 4, checkpointed: bool = False) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.GELU()) for _ in range(depth))
        self.head, self.checkpointed = nn.Linear(width, 10), checkpointed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = checkpoint(block, x, use_reentrant=False) if self.checkpointed else block(x)
        return self.head(x)


class LSTMLM(nn.Module):
    def __init__(self, vocab: int = 1000, width: int = 256) -> None:
        super().__init__()
        self.embed, self.rnn = nn.Embedding(vocab, width), nn.LSTM(width, width, 2, batch_first=True)
        self.head = nn.Linear(width, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.embed(ids))[0])


class UNet(nn.Module):
    def __init__(self, width: int = 32, classes: int = 4) -> None:
        super().__init__()
        def block(a: int, b: int) -> nn.Module:
            return nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(inplace=True))
        self.down1, self.down2, self.mid = block(3, width), block(width, 2 * width), block(2 * width, 4 * width)
        self.up2, self.dec2 = nn.ConvTranspose2d(4 * width, 2 * width, 2, 2), block(4 * width, 2 * width)
        self.up1, self.dec1 = nn.ConvTranspose2d(2 * width, width, 2, 2), block(2 * width, width)
        self.head = nn.Conv2d(width, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.down1(x)
        b = self.down2(F.max_pool2d(a, 2))
        m = self.mid(F.max_pool2d(b, 2))
        b = self.dec2(torch.cat([self.up2(m), b], 1))
        return self.head(self.dec1(torch.cat([self.up1(b), a], 1)))


def _frozen_resnet() -> nn.Module:
    import torchvision

    model = torchvision.models.resnet18(num_classes=10)
    for module in (model.conv1, model.bn1, model.layer1, model.layer2):
        module.requires_grad_(False)
    return model


def _torchvision(name: str, **kwargs: object) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision

        return torchvision.models.get_model(name, weights=None, **kwargs)
    return build


def _hf(kind: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import transformers

        if kind == "bert":
            config = transformers.BertConfig(hidden_size=128, num_attention_heads=4, intermediate_size=512,
                                             num_hidden_layers=2, vocab_size=1000)
            model = transformers.BertForMaskedLM(config)
        else:
            config = transformers.GPT2Config(n_layer=2, n_embd=128, n_head=4, vocab_size=1000)
            model = transformers.GPT2LMHeadModel(config)
        return _Logits(model)
    return build


class _Logits(nn.Module):
    """A Hugging Face model's logits, the tensor the loss reads."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids).logits


CASES = [
    Case("mlp b64", MLP, (64, 1024)),
    Case("mlp b256", MLP, (256, 1024)),
    Case("mlp b256 checkpointed", lambda: MLP(checkpointed=True), (256, 1024)),
    Case("resnet18 sgd", _torchvision("resnet18", num_classes=10), (16, 3, 64, 64), "sgd"),
    Case("resnet18 adamw", _torchvision("resnet18", num_classes=10), (16, 3, 64, 64)),
    Case("resnet18 frozen stem", _frozen_resnet, (16, 3, 64, 64)),
    Case("mobilenet_v3_small", _torchvision("mobilenet_v3_small", num_classes=10), (16, 3, 64, 64)),
    Case("vit_b_16 small", _torchvision("vit_b_16", image_size=64, num_classes=10), (4, 3, 64, 64)),
    Case("densenet121", _torchvision("densenet121", num_classes=10), (8, 3, 64, 64)),
    Case("lstm lm", LSTMLM, (8, 64), dtype=torch.int64),
    Case("unet", UNet, (4, 3, 64, 64)),
    Case("bert small", _hf("bert"), (8, 64), dtype=torch.int64),
    Case("gpt2 small", _hf("gpt2"), (8, 64), dtype=torch.int64),
]


def _optimizer(name: str, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.01, momentum=0.9) if name == "sgd" else torch.optim.AdamW(params, lr=1e-3)


def _loss(out: torch.Tensor, case: Case, device: torch.device) -> torch.Tensor:
    if case.loss == "mse":
        return F.mse_loss(out, torch.zeros_like(out))
    classes = out.shape[-1] if out.dim() in (2, 3) else out.shape[1]
    if out.dim() == 3:  # [B, T, V] logits: one target per token
        target = torch.zeros(out.shape[:2], dtype=torch.long, device=device)
        return F.cross_entropy(out.reshape(-1, classes), target.reshape(-1))
    target = torch.zeros((out.shape[0], *out.shape[2:]), dtype=torch.long, device=device)  # per pixel
    return F.cross_entropy(out, target)


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, case: Case) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss = _loss(model(x), case, x.device)
    loss.backward()
    optimizer.step()


def _input(case: Case, device: torch.device) -> torch.Tensor:
    if case.dtype == torch.int64:
        return torch.randint(0, 1000, case.shape, device=device)
    return torch.randn(case.shape, device=device, dtype=case.dtype)


def cuda_peak(case: Case) -> dict:
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = case.build().to(device).train()
    optimizer = _optimizer(case.optimizer, [p for p in model.parameters() if p.requires_grad])
    x = _input(case, device)
    _step(model, optimizer, x, case)  # the warm-up: optimizer state, cuBLAS workspace
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    _step(model, optimizer, x, case)
    torch.cuda.synchronize()
    return {"before": before, "peak": torch.cuda.max_memory_allocated(), "seconds": time.perf_counter() - start}


def cpu_peak(case: Case) -> dict:
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import MemoryProfileTimeline

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = case.build().train()
    optimizer = _optimizer(case.optimizer, [p for p in model.parameters() if p.requires_grad])
    x = _input(case, torch.device("cpu"))
    _step(model, optimizer, x, case)
    before = _alive(model, optimizer, x)
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                 with_stack=True) as prof:
        _step(model, optimizer, x, case)
    timeline = MemoryProfileTimeline(prof._memory_profile())
    # The timeline starts with what was alive before the step (parameters, optimizer state).
    _, sizes = timeline._coalesce_timeline(torch.device("cpu"))
    peak = max((sum(s) for s in sizes), default=0)
    return {"before": before, "peak": peak, "seconds": time.perf_counter() - start}


def _alive(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> int:
    """Bytes alive before the step: parameters, buffers, optimizer state and the input."""
    tensors = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
               for t in [*model.parameters(), *model.buffers(), x]}
    for state in optimizer.state.values():
        tensors.update({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
                        for t in state.values() if isinstance(t, torch.Tensor)})
    return sum(tensors.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", type=Path, default=Path("/tmp/memory_truth.jsonl"))
    parser.add_argument("--only", action="append", default=[], help="case names to run (substring)")
    args = parser.parse_args(argv)
    measure = cuda_peak if args.device == "cuda" else cpu_peak
    with args.out.open("w") as out:
        for case in CASES:
            if args.only and not any(part in case.name for part in args.only):
                continue
            try:
                row = {"model": case.name, "device": args.device, "torch": torch.__version__,
                       "optimizer": case.optimizer, "shape": list(case.shape), **measure(case)}
            except Exception as exc:  # a case that cannot run here is a row that says why
                row = {"model": case.name, "device": args.device, "error": f"{type(exc).__name__}: {exc}"[:300]}
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(json.dumps(row), flush=True)
            if args.device == "cuda":
                torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
