"""TOAST's ViT output against an independent re-computation of METHOD.md, written out here."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import build_tiny, images, randomise_top_down


def _split_heads(t, num_heads):
    b, n, c = t.shape
    return t.reshape(b, n, num_heads, c // num_heads).transpose(1, 2)


def explicit_blocks(backbone, x, signals=None, double_bias=False):
    """Patch embedding, then every block with attention written out; ``signals[i]`` joins layer i's value."""
    h = backbone.norm_pre(backbone._pos_embed(backbone.patch_embed(x)))
    for i, block in enumerate(backbone.blocks):
        attn = block.attn
        a = block.norm1(h)
        weight, bias = attn.qkv.weight, attn.qkv.bias
        width = weight.shape[0] // 3
        q, k, v = (a @ weight.T + bias).split(width, dim=-1)
        if signals is not None:
            v = v + signals[i] @ weight[2 * width :].T
            if double_bias:
                v = v + bias[2 * width :]
        b, n, _ = q.shape
        q, k, v = (_split_heads(t, attn.num_heads) for t in (q, k, v))
        scores = q @ k.transpose(-1, -2) * attn.head_dim**-0.5
        mixed = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, width)
        h = h + block.ls1(attn.proj(mixed))
        h = h + block.ls2(block.mlp(block.norm2(h)))
    return backbone.norm(h)


def reference_toast(model, x, double_bias):
    """METHOD.md: select, feedback top layer first, second pass with v += W_v td_i (+ b_v), CLS → head."""
    bb, td = model.backbone, model.top_down
    z = explicit_blocks(bb, x)
    mask = (F.normalize(z, dim=-1) @ F.normalize(td.prompt, dim=0)).clamp(0, 1).unsqueeze(-1)
    u = (z * mask) @ td.transform
    signals = [None] * len(bb.blocks)
    for i in reversed(range(len(bb.blocks))):
        u = u @ td.decoders[i].down.effective_weight().T
        signals[i] = u @ td.decoders[i].to_value.effective_weight().T
    z2 = explicit_blocks(bb, x, signals, double_bias)
    return model.head(z2[:, 0]), z, z2


@pytest.mark.parametrize("double_bias", [True, False])
@pytest.mark.parametrize("transfer", ["toast", "toast-lite"])
def test_toast_equals_explicit_recomputation(transfer, double_bias):
    model = build_tiny(transfer, **{"MODEL.TOAST.DOUBLE_BIAS": double_bias}).double().eval()
    randomise_top_down(model)
    x = images().double()
    with torch.no_grad():
        expected, z, z2 = reference_toast(model, x, double_bias)
        out = model.forward_two_pass(x)
        logits = model(x)
    assert (z2 - z).abs().max() > 1e-2, "the feedback must change the second pass for this test to mean anything"
    torch.testing.assert_close(out.first_pass_tokens, z, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.tokens, z2, atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)


def test_float32_matches_recomputation_with_unfolded_injection():
    """Batch 1 with few tokens takes the two-matmul path instead of the folded one; both must agree."""
    model = build_tiny("toast").eval()
    randomise_top_down(model)
    x = images(batch=1)
    with torch.no_grad():
        expected, _, _ = reference_toast(model, x, double_bias=True)
        torch.testing.assert_close(model(x), expected, atol=1e-4, rtol=1e-4)


def test_second_pass_uses_timm_fused_attention(monkeypatch):
    model = build_tiny("toast").eval()
    assert all(block.attn.fused_attn for block in model.backbone.blocks)
    calls = []
    real = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting)
    with torch.no_grad():
        model(images())
    assert len(calls) == 2 * len(model.backbone.blocks)


@pytest.mark.parametrize("double_bias", [True, False])
@pytest.mark.parametrize("transfer", ["toast", "toast-lite"])
def test_folded_feedback_for_prediction_equals_the_unfolded_path(transfer, double_bias):
    """predict's folded top-down path (one matrix, formed once per adapter) gives the unfolded logits."""
    model = build_tiny(transfer, **{"MODEL.TOAST.DOUBLE_BIAS": double_bias}).double().eval()
    randomise_top_down(model)
    x = images().double()
    with torch.no_grad():
        expected, _, _ = reference_toast(model, x, double_bias)
        with model.folded_feedback():
            folded = model(x)
            first_fold = model._folded
        with model.folded_feedback():
            assert model._folded is first_fold  # the same adapter: folded once
    torch.testing.assert_close(folded, expected, atol=1e-8, rtol=1e-8)
    with pytest.raises(RuntimeError, match="call model.eval"):
        with model.train().folded_feedback():
            pass
