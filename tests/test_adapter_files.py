"""Adapter files: only the method's tensors, exact round trips, and clear errors on mismatch."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from toast.adapter import ADAPTER_CONFIG, ADAPTER_WEIGHTS, load_adapter, save_adapter
from visual_classification.models import TRANSFER_METHODS

from conftest import build_tiny, images


def _train_one_step(model):
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    F.cross_entropy(model(images(4)), torch.tensor([0, 1, 2, 3])).backward()
    optimizer.step()
    model.eval()


@pytest.mark.parametrize("transfer", sorted(TRANSFER_METHODS))
def test_round_trip_reproduces_logits_exactly(transfer, tmp_path):
    model = build_tiny(transfer, seed=0)
    _train_one_step(model)
    save_adapter(model, tmp_path, model.adapter_config())
    fresh = build_tiny(transfer, seed=123).eval()  # every added tensor starts different
    frozen = {n: t for n, t in model.backbone.state_dict().items() if n not in model.adapter_state_dict()}
    fresh.backbone.load_state_dict(frozen, strict=False)  # the same pretrained backbone, as a user's file would give
    load_adapter(fresh, tmp_path, expect={"backbone": model.backbone_name, "transfer_type": transfer})
    with torch.no_grad():
        torch.testing.assert_close(fresh(images()), model(images()), atol=0, rtol=0)


def test_adapter_holds_only_the_methods_tensors(tmp_path):
    model = build_tiny("toast")
    save_adapter(model, tmp_path, model.adapter_config())
    config = json.loads((tmp_path / ADAPTER_CONFIG).read_text())
    names = set(config["tensors"])
    assert names == {n for n in model.state_dict() if n.startswith(("top_down.", "head."))}
    assert config["backbone"] == "vit_tiny_patch16_224" and config["transfer_type"] == "toast"
    assert config["tensors"]["top_down.transform"] == [192, 192]
    assert (tmp_path / ADAPTER_WEIGHTS).stat().st_size < 4 * (12 * 2 * 192 * 192 + 192 * 192 + 2000)


def test_loading_onto_another_backbone_names_it(tmp_path):
    model = build_tiny("toast")
    save_adapter(model, tmp_path, model.adapter_config())
    other = build_tiny("toast", **{"MODEL.BACKBONE": "vit_small_patch16_224"})
    with pytest.raises(ValueError, match="backbone='vit_tiny_patch16_224'.*vit_small_patch16_224"):
        load_adapter(other, tmp_path, expect={"backbone": other.backbone_name})


def test_shape_mismatch_names_tensor_and_both_shapes(tmp_path):
    model = build_tiny("toast")
    save_adapter(model, tmp_path, model.adapter_config())
    other = build_tiny("toast", **{"MODEL.BACKBONE": "vit_small_patch16_224"})
    with pytest.raises(
        ValueError, match=r"adapter tensor (head|top_down)\.\S+ has shape \([^)]*192\).*expects \([^)]*384\)"
    ):
        load_adapter(other, tmp_path)


def test_missing_tensor_is_named(tmp_path):
    model = build_tiny("toast")
    save_adapter(model, tmp_path, model.adapter_config())
    lite = build_tiny("toast-lite")
    with pytest.raises(ValueError, match="missing.*lora_a"):
        load_adapter(lite, tmp_path)


def test_missing_folder_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match=ADAPTER_CONFIG):
        load_adapter(build_tiny("toast"), tmp_path / "nowhere")
