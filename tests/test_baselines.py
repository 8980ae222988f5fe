"""VPT and LoRA baselines: what they insert and where."""

from __future__ import annotations

import torch
from peft.tuners.lora import LoraLayer

from conftest import build_tiny, images


def test_vpt_deep_inserts_fresh_tokens_before_every_block():
    model = build_tiny("prompt").eval()
    seen = []
    hooks = [b.register_forward_pre_hook(lambda m, a: seen.append(a[0])) for b in model.backbone.blocks]
    with torch.no_grad():
        tokens = model.forward_features(images())
    for h in hooks:
        h.remove()
    assert tokens.shape == (2, 1 + 4, 192)  # prompts are taken out again after the final norm
    assert all(x.shape == (2, 1 + 3 + 4, 192) for x in seen)
    torch.testing.assert_close(seen[0][0, 1:4], model.prompt_tokens[0])
    for i in range(1, len(seen)):
        torch.testing.assert_close(seen[i][1, 1:4], model.prompt_deep_tokens[i - 1])


def test_vpt_shallow_has_one_set_of_tokens():
    model = build_tiny("prompt", **{"MODEL.PROMPT.DEEP": False})
    assert model.prompt_deep_tokens is None
    assert (
        sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and n.startswith("prompt_")) == 3 * 192
    )


def test_vpt_initialisation_is_xavier_over_patch_fan_in():
    model = build_tiny("prompt", **{"MODEL.PROMPT.NUM_TOKENS": 50})
    bound = (6.0 / (3 * 16 * 16 + 192)) ** 0.5
    assert model.prompt_deep_tokens.abs().max() <= bound
    assert model.prompt_deep_tokens.abs().max() > 0.9 * bound


def test_lora_wraps_qkv_through_peft_and_starts_as_the_backbone():
    plain = build_tiny("linear", seed=0).eval()
    lora = build_tiny("lora", seed=0).eval()
    qkvs = [b.attn.qkv for b in lora.backbone.blocks]
    assert all(isinstance(q, LoraLayer) for q in qkvs)
    assert qkvs[0].scaling["default"] == 0.25  # alpha 1 / rank 4, as the original
    with torch.no_grad():
        torch.testing.assert_close(lora(images()), plain(images()))  # B starts at zero
