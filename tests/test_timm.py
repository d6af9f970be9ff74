"""timm, a zoo nobody here wrote: a fixed sample of 50 architectures (seeded from the whole
list) analyzes at each one's default input with no crash, no error finding and no SHP102,
and its output equals a bare meta forward. The full sweep is a benchmark's job."""
from __future__ import annotations

import pytest
import timm
import torch

import shapecheck

SAMPLE = [
    "resnet101d", "regnety_320", "regnetz_b16_evos", "crossvit_18_240", "vit_huge_patch16_gap_448",
    "efficientnetv2_s", "tf_efficientnetv2_b3", "cs3darknet_focus_x", "resnext101_64x4d",
    "vit_betwixt_patch16_gap_256", "deit3_small_patch16_384", "vit_so400m_patch14_siglip_378", "davit_base_fl",
    "bat_resnext26ts", "nextvit_large", "vit_base_patch32_224", "maxxvit_rmlp_small_rw_256",
    "tf_efficientnetv2_m", "vit_base_patch16_224", "nf_seresnet26", "dla102x2", "legacy_senet154",
    "tiny_vit_11m_224", "mobileone_s2", "mvitv2_tiny", "beitv2_large_patch16_224", "densenet161", "resnet33ts",
    "vit_pe_spatial_large_patch14_448", "vit_gigantic_patch14_224", "efficientnet_l2", "efficientformerv2_s2",
    "maxvit_pico_rw_256", "efficientvit_l1", "twins_svt_base", "resnetv2_50d", "efficientnet_el_pruned",
    "coatnet_0_rw_224", "vit_small_patch16_18x2_224", "tf_efficientnet_b2", "res2net101_26w_4s",
    "efficientnet_b3_g8_gn", "rexnetr_130", "mobilenetv1_100h", "swinv2_large_window12_192", "tf_efficientnet_b7",
    "eca_halonext26ts", "beit3_large_patch16_224", "vit_base_patch32_plus_256", "nfnet_f2",
]
# timm 1.0.31's names; a later timm that renames one leaves it out of the sample, not failing
AVAILABLE = [name for name in SAMPLE if name in set(timm.list_models())]


def test_the_sample_is_still_mostly_available():
    assert len(AVAILABLE) >= 45


@pytest.mark.parametrize("name", AVAILABLE)
def test_a_timm_architecture_analyzes_cleanly(name):
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False).eval()
    shape = model.pretrained_cfg.get("input_size", (3, 224, 224))
    report = shapecheck.analyze(model, "x".join(map(str, shape)), batch=1)
    assert report.errors == () and not [f for f in report.findings if f.code == "SHP102"], report.findings
    with torch.no_grad():
        bare = model(torch.empty(1, *shape, device="meta"))
    assert report.outputs == (tuple(bare.shape),)
