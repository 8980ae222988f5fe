"""Trainable-parameter counts on ViT-B/16 (built without weights) against their closed forms."""

from __future__ import annotations

import pytest

from visual_classification.config import get_cfg
from visual_classification.models import TRANSFER_METHODS
from visual_classification.models.build import build_model

C, L, K = 768, 12, 100
HEAD = C * K + K
VIT_B_PARAMS = 85_798_656  # timm vit_base_patch16_224 without its classifier
BIASES = L * (3 * C + C + 4 * C + C + C + C) + C + C  # qkv, proj, fc1, fc2, norm1, norm2 per block; patch embed, norm

EXPECTED = {
    "linear": HEAD,
    "end2end": VIT_B_PARAMS + HEAD,
    "bias": BIASES + HEAD,
    "prompt": L * 100 * C + HEAD,  # VPT-deep, 100 tokens per layer
    "lora": L * 4 * (C + 3 * C) + HEAD,  # rank 4 on qkv: A is 4×C, B is 3C×4
    "toast": L * 2 * C * C + C + HEAD,  # A_i, B_i and p
    "toast-lite": L * 2 * (4 * C + C * 4) + C + C * C + HEAD,  # rank-4 updates of A_i, B_i; p; T
}


def test_every_registered_method_has_a_closed_form():
    assert set(EXPECTED) == set(TRANSFER_METHODS)


@pytest.mark.parametrize("transfer", sorted(EXPECTED))
def test_vit_b16_trainable_parameters(transfer):
    cfg = get_cfg()
    cfg.MODEL.BACKBONE = "vit_base_patch16_224"
    cfg.MODEL.TRANSFER_TYPE = transfer
    cfg.DATA.NUMBER_CLASSES = K
    trainable, _ = build_model(cfg).parameter_counts()
    assert trainable == EXPECTED[transfer]
