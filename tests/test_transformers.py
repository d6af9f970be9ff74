"""Hugging Face models built from a small config (no download), through the API: shapes and
output keys equal a real forward, and nothing is reported on these valid models."""
from __future__ import annotations

import pytest
import torch
from transformers import (BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, ViTConfig, ViTModel, WhisperConfig,
                          WhisperModel)

import shapecheck

SMALL = dict(hidden_size=64, num_attention_heads=4, intermediate_size=128, num_hidden_layers=2)
MODELS = {
    "bert": (lambda: BertModel(BertConfig(**SMALL)), ["16:int64"]),
    "gpt2": (lambda: GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=4)), ["16:int64"]),
    "vit": (lambda: ViTModel(ViTConfig(**SMALL, image_size=32, patch_size=8)), ["3x32x32"]),
    "whisper": (lambda: WhisperModel(WhisperConfig(
        encoder_layers=1, decoder_layers=1, d_model=64, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=80, max_source_positions=50)),
        ["80x100", "decoder_input_ids=5:int64"]),
}


def _example(spec: str) -> tuple[str | None, torch.Tensor]:
    name, _, rest = spec.rpartition("=")
    dims, _, dtype = rest.partition(":")
    shape = (2, *map(int, dims.split("x")))
    return name or None, torch.zeros(shape, dtype=torch.int64) if dtype else torch.randn(shape)


@pytest.mark.parametrize("name", MODELS)
def test_a_transformers_model_matches_its_real_forward(name):
    make, spec = MODELS[name]
    model = make().eval()
    report = shapecheck.analyze(model, spec)
    examples = [_example(s) for s in spec]
    with torch.no_grad():
        out = model(*[x for n, x in examples if n is None], **{n: x for n, x in examples if n is not None})
    real = {key: tuple(value.shape) for key, value in out.items() if isinstance(value, torch.Tensor)}
    assert report.device == "meta" and report.findings == ()
    assert dict(zip(report.output_names, report.outputs)) == real
