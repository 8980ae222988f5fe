"""The properties METHOD.md asks every implementation to keep, on every transfer type where they apply."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from visual_classification.models import TRANSFER_METHODS

from conftest import build_tiny, images, randomise_top_down


def plain_logits(model, x):
    """The frozen backbone alone, through the same head."""
    return model.head(model.backbone.forward_head(model.backbone.forward_features(x), pre_logits=True))


def test_zero_signal_makes_second_pass_equal_first():
    model = build_tiny("toast", **{"MODEL.TOAST.DOUBLE_BIAS": False}).eval()
    randomise_top_down(model)
    with torch.no_grad():
        model.top_down.transform.zero_()  # y = 0, so every td_i = 0
        out = model.forward_two_pass(images())
    torch.testing.assert_close(out.tokens, out.first_pass_tokens, atol=0, rtol=0)


def test_zero_b_gives_frozen_backbone_output():
    model = build_tiny("toast", **{"MODEL.TOAST.DOUBLE_BIAS": False}).eval()
    randomise_top_down(model)
    with torch.no_grad():
        for decoder in model.top_down.decoders:
            decoder.to_value.weight.zero_()
        torch.testing.assert_close(model(images()), plain_logits(model, images()), atol=0, rtol=0)


def test_double_bias_shifts_values_even_with_zero_b():
    """The original ViT adds b_v with the signal, so B = 0 is not the frozen backbone there: documented, not hidden."""
    model = build_tiny("toast", **{"MODEL.TOAST.DOUBLE_BIAS": True}).eval()
    with torch.no_grad():
        for block in model.backbone.blocks:
            block.attn.qkv.bias.normal_()
        for decoder in model.top_down.decoders:
            decoder.to_value.weight.zero_()
        assert (model(images()) - plain_logits(model, images())).abs().max() > 1e-3


def _trainable_names(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("transfer", sorted(TRANSFER_METHODS))
def test_training_step_leaves_frozen_tensors_bit_identical(transfer):
    model = build_tiny(transfer).train()
    if hasattr(model, "top_down"):
        randomise_top_down(model)
    before = {n: t.detach().clone() for n, t in model.state_dict().items()}
    trainable = _trainable_names(model)
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9, weight_decay=1e-2
    )
    loss = F.cross_entropy(model(images(4)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    frozen_changed = [n for n in before if n not in trainable and not torch.equal(before[n], after[n])]
    trained = [n for n in trainable if not torch.equal(before[n], after[n])]
    assert frozen_changed == []
    assert "head.weight" in trained
    assert len(trained) >= 0.9 * len(trainable)
    if transfer != "end2end":
        backbone_trainable = [n for n in trainable if n.startswith("backbone.")]
        if transfer in ("linear", "prompt") or transfer.startswith("toast"):
            assert backbone_trainable == []


@pytest.mark.parametrize("transfer", ["toast", "toast-lite"])
def test_first_pass_records_no_graph(transfer):
    model = build_tiny(transfer).train()
    out = model.forward_two_pass(images())
    assert out.first_pass_tokens.grad_fn is None and not out.first_pass_tokens.requires_grad
    assert out.tokens.requires_grad


def test_first_pass_has_graph_when_the_backbone_trains():
    model = build_tiny("end2end", **{"MODEL.TYPE": "vit_top_down"}).train()
    assert hasattr(model, "top_down")
    out = model.forward_two_pass(images())
    assert out.first_pass_tokens.requires_grad


def test_trainable_sets_match_method_table():
    toast = _trainable_names(build_tiny("toast"))
    assert "top_down.transform" not in toast and "top_down.prompt" in toast
    assert {n for n in toast if "decoders" in n} == {
        f"top_down.decoders.{i}.{part}.weight" for i in range(12) for part in ("down", "to_value")
    }
    lite = _trainable_names(build_tiny("toast-lite"))
    assert "top_down.transform" in lite and "top_down.prompt" in lite
    assert not any(n.endswith(".weight") and "decoders" in n for n in lite)
    assert sum("lora_" in n for n in lite) == 12 * 2 * 2
    assert _trainable_names(build_tiny("linear")) == {"head.weight", "head.bias"}
    bias = _trainable_names(build_tiny("bias"))
    assert bias and all(n.endswith(".bias") or n.startswith("head.") for n in bias)


def test_reconstruction_loss_matches_definition_and_is_skipped_at_zero():
    model = build_tiny("toast", **{"MODEL.TOAST.RECON_COEF": 0.1}).eval()
    randomise_top_down(model)
    x = images()
    ins, outs = [], []

    def record(module, args, output):
        ins.append(args[0])
        outs.append(output)

    hooks = [b.register_forward_hook(record) for b in model.backbone.blocks]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    blocks = len(model.backbone.blocks)
    second_in, second_out = ins[blocks:], outs[blocks:]  # the second pass
    expected = 0.1 * sum(F.mse_loss(d.down(o), i) for d, i, o in zip(model.top_down.decoders, second_in, second_out))
    torch.testing.assert_close(model.recon_loss, expected)

    zero = build_tiny("toast").eval()
    with torch.no_grad():
        zero(x)
    assert zero.recon_loss is None


def test_reconstruction_loss_trains_only_a():
    model = build_tiny("toast", **{"MODEL.TOAST.RECON_COEF": 1.0}).train()
    model(images())
    model.recon_loss.backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert grads and all(".down." in n for n in grads)


def test_deepcopy_steers_the_copy():
    model = build_tiny("toast").eval()
    randomise_top_down(model)
    clone = copy.deepcopy(model)
    with torch.no_grad():
        expected = model(images())
        for decoder in model.top_down.decoders:
            decoder.to_value.weight.zero_()
        torch.testing.assert_close(clone(images()), expected, atol=0, rtol=0)


def test_both_passes_cross_entropy_option_keeps_first_pass_logits():
    model = build_tiny("toast", **{"MODEL.TOAST.BOTH_PASSES_CE": True}).train()
    logits = model(images())
    assert model.first_pass_logits is not None and model.first_pass_logits.shape == logits.shape
    torch.testing.assert_close(
        model.first_pass_logits,
        model.head(model.backbone.forward_head(model.forward_two_pass(images()).first_pass_tokens, pre_logits=True)),
    )
    model.eval()
    model(images())
    assert model.first_pass_logits is None
