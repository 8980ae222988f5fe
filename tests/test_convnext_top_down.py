"""TOAST on a timm ConvNeXt: independent re-computation, frozen weights, parameter counts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import build_tiny

CONVNEXT = {"MODEL.BACKBONE": "convnext_atto"}  # dims 40, 80, 160, 320; stem stride 4


def randomise(model, seed=3):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.top_down.named_parameters():
            p.copy_((0.3 if "decoders" in name else 1.0) * torch.randn(p.shape, generator=gen))


def reference(model, x):
    """Written from the method: mask on the head-normed map, y = x ⊙ m ⊙ T, conv chain, signals into stage inputs."""
    bb, td = model.backbone, model.top_down
    first = bb.stages(bb.stem(x))
    norm = bb.head.norm
    normed = F.layer_norm(first.permute(0, 2, 3, 1), (first.shape[1],), norm.weight, norm.bias, norm.eps)
    cos = (F.normalize(normed, dim=-1) @ F.normalize(td.prompt, dim=0)).clamp(0, 1)  # B×h×w
    u = first * cos.unsqueeze(1) * td.transform.view(1, -1, 1, 1)
    signals = [None] * 4
    for i in (3, 2, 1, 0):
        dec = td.decoders[i]
        u = F.conv_transpose2d(u, dec.down.weight, stride=dec.down.stride)
        signals[i] = F.conv2d(u, dec.to_value.weight)
    h = bb.stem(x + signals[0])
    for i, stage in enumerate(bb.stages):
        h = stage(h + signals[i]) if i else stage(h)
    return model.head(bb.forward_head(h, pre_logits=True)), first, h


def test_convnext_toast_equals_recomputation():
    model = build_tiny("toast", **CONVNEXT).double().eval()
    randomise(model)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)).double()
    with torch.no_grad():
        expected, first, second = reference(model, x)
        got_second, got_first, signals = model.forward_two_pass(x)
        logits = model(x)
    assert signals[0].shape == x.shape and signals[3].shape == (2, 160, 4, 4)
    assert (second - first).abs().max() > 1e-2
    torch.testing.assert_close(got_first, first, atol=1e-6, rtol=0)
    torch.testing.assert_close(logits, expected, atol=1e-6, rtol=0)


def test_convnext_trainable_parameters_and_frozen_backbone():
    model = build_tiny("toast", **CONVNEXT).train()
    decoders = 320 * 160 * 4 + 160**2 + 160 * 80 * 4 + 80**2 + 80 * 40 * 4 + 40**2 + 40 * 3 * 16 + 3**2
    assert model.parameter_counts()[0] == decoders + 320 + (320 * 5 + 5)
    before = {n: t.clone() for n, t in model.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    F.cross_entropy(model(torch.randn(2, 3, 64, 64)), torch.tensor([0, 1])).backward()
    optimizer.step()
    changed = {n for n, t in model.state_dict().items() if not torch.equal(before[n], t)}
    assert changed and all(n.startswith(("top_down.decoders", "top_down.prompt", "head.")) for n in changed)


@pytest.mark.parametrize("transfer", ["linear", "bias", "end2end", "lora"])
def test_convnext_baselines_build_and_run(transfer):
    extra = {"MODEL.LORA.TARGETS": ["fc1", "fc2"]} if transfer == "lora" else {}
    model = build_tiny(transfer, **CONVNEXT, **extra)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 5)
    if transfer == "lora":
        assert (
            model.parameter_counts()[0]
            == sum(
                4 * (m.in_channels + m.out_channels)
                for n, m in model.backbone.named_modules()  # 1×1 convolutions
                if n.endswith(("mlp.fc1.base_layer", "mlp.fc2.base_layer"))
            )
            + 320 * 5
            + 5
        )


def test_convnext_refuses_toast_lite():
    with pytest.raises(ValueError, match="toast-lite is implemented for ViTs only"):
        build_tiny("toast-lite", **CONVNEXT)
