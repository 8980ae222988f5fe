"""Weights files (timm, original TOAST release, safetensors) and the errors bad input gets."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from visual_classification.models.build import build_model

from conftest import build_tiny, images, randomise_top_down, tiny_cfg


def original_release_state(model):
    """A checkpoint as the original TOAST code saved it: timm/DeiT keys + decoders.{i}.linear(2), prompt, T."""
    state = {k[len("backbone.") :]: v.clone() for k, v in model.state_dict().items() if k.startswith("backbone.")}
    state["head.weight"] = torch.randn(1000, 192)  # an ImageNet classifier, to be dropped
    state["head.bias"] = torch.randn(1000)
    td = model.top_down
    for i, decoder in enumerate(td.decoders):
        state[f"decoders.{i}.linear.weight"] = decoder.down.weight.detach().clone()
        state[f"decoders.{i}.linear2.weight"] = decoder.to_value.weight.detach().clone()
    state["prompt"] = td.prompt.detach().clone()
    state["top_down_transform"] = td.transform.detach().clone()
    return {"model": state}


def test_original_release_file_round_trips(tmp_path):
    source = build_tiny("toast", seed=0).eval()
    randomise_top_down(source)
    path = tmp_path / "vit_topdown.pth"
    torch.save(original_release_state(source), path)
    loaded = build_tiny("toast", seed=7, **{"MODEL.MODEL_ROOT": str(path), "MODEL.TYPE": "vit_top_down"}).eval()
    loaded.head.load_state_dict(source.head.state_dict())
    for name, tensor in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    with torch.no_grad():
        torch.testing.assert_close(loaded(images()), source(images()), atol=0, rtol=0)


def test_original_release_file_gives_linear_probe_its_backbone(tmp_path, caplog):
    source = build_tiny("toast", seed=0)
    path = tmp_path / "vit_topdown.pth"
    torch.save(original_release_state(source), path)
    with caplog.at_level("INFO"):
        linear = build_tiny("linear", seed=5, **{"MODEL.MODEL_ROOT": str(path)})
    assert torch.equal(linear.backbone.pos_embed, source.backbone.pos_embed)
    assert "top-down tensors" in caplog.text and "not used" in caplog.text


@pytest.mark.parametrize("transform", ["wrong_shape", "missing", "unknown"])
def test_bad_checkpoint_names_the_key(tmp_path, transform):
    state = original_release_state(build_tiny("toast"))["model"]
    if transform == "wrong_shape":
        state["blocks.3.attn.qkv.weight"] = torch.zeros(10, 10)
        pattern = r"blocks\.3\.attn\.qkv\.weight: file \(10, 10\) vs model \(576, 192\)"
    elif transform == "missing":
        del state["blocks.5.mlp.fc2.bias"]
        pattern = r"missing keys: blocks\.5\.mlp\.fc2\.bias"
    else:
        state["blocks.2.extra_gate"] = torch.zeros(3)
        pattern = r"unexpected keys: blocks\.2\.extra_gate"
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=pattern):
        build_tiny("toast", **{"MODEL.MODEL_ROOT": str(path)})


def test_bad_top_down_tensor_is_named(tmp_path):
    state = original_release_state(build_tiny("toast"))
    state["model"]["decoders.4.linear2.weight"] = torch.zeros(192, 7)
    path = tmp_path / "bad_td.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"decoders\.4\.to_value\.weight.*\(192, 7\).*\(192, 192\)"):
        build_tiny("toast", **{"MODEL.MODEL_ROOT": str(path)})


def test_safetensors_file_and_position_embedding_resampling(tmp_path):
    source = build_tiny("linear", seed=0)
    state = {
        k[len("backbone.") :]: v.contiguous() for k, v in source.state_dict().items() if k.startswith("backbone.")
    }
    path = tmp_path / "vit.safetensors"
    save_file(state, str(path))
    same = build_tiny("linear", seed=9, **{"MODEL.MODEL_ROOT": str(path)})
    assert torch.equal(same.backbone.blocks[0].attn.qkv.weight, source.backbone.blocks[0].attn.qkv.weight)
    bigger = build_tiny("linear", **{"MODEL.MODEL_ROOT": str(path), "DATA.CROPSIZE": 64})
    assert bigger.backbone.pos_embed.shape == (1, 1 + 16, 192)
    assert bigger(torch.randn(1, 3, 64, 64)).shape == (1, 5)


def test_top_down_weights_from_an_adapter_folder(tmp_path):
    from toast.adapter import save_adapter

    source = build_tiny("toast", seed=0)
    randomise_top_down(source)
    save_adapter(source, tmp_path, source.adapter_config())
    target = build_tiny("toast-lite", seed=4, **{"MODEL.TOPDOWN_WEIGHTS": str(tmp_path)})
    assert torch.equal(target.top_down.decoders[3].down.weight, source.top_down.decoders[3].down.weight)
    assert torch.equal(target.top_down.transform, source.top_down.transform)


def test_top_down_weights_made_for_another_model_are_refused_by_name(tmp_path):
    """Same width and depth would load silently; another backbone, other weights or DOUBLE_BIAS are refused."""
    from toast.adapter import save_adapter

    source = build_tiny("toast", seed=0)
    best = tmp_path / "pre" / "best"
    save_adapter(source, best, source.adapter_config())
    with pytest.raises(ValueError, match=r"trained on backbone 'vit_tiny_patch16_224', this run uses 'deit_tiny"):
        build_tiny("toast", **{"MODEL.TOPDOWN_WEIGHTS": str(best), "MODEL.BACKBONE": "deit_tiny_patch16_224"})
    weights_a, weights_b = tmp_path / "a.pth", tmp_path / "b.pth"
    torch.save(source.backbone.state_dict(), weights_a)
    torch.save(build_tiny("linear", seed=1).backbone.state_dict(), weights_b)
    (tmp_path / "pre" / "config.yaml").write_text(
        f"MODEL:\n  MODEL_ROOT: {weights_a}\n  TOAST:\n    DOUBLE_BIAS: false\n", encoding="utf-8"
    )
    same = {"MODEL.TOPDOWN_WEIGHTS": str(best), "MODEL.MODEL_ROOT": str(weights_a)}
    with pytest.raises(ValueError, match=r"trained with MODEL.TOAST.DOUBLE_BIAS False, this run sets True"):
        build_tiny("toast", **same)
    with pytest.raises(ValueError, match=r"MODEL_ROOT='.*a.pth', this run loads MODEL.MODEL_ROOT='.*b.pth'"):
        build_tiny("toast", **{**same, "MODEL.MODEL_ROOT": str(weights_b), "MODEL.TOAST.DOUBLE_BIAS": False})
    copy = tmp_path / "copy.pth"
    copy.write_bytes(weights_a.read_bytes())  # the same weights under another path are the same weights
    loaded = build_tiny("toast", **{**same, "MODEL.MODEL_ROOT": str(copy), "MODEL.TOAST.DOUBLE_BIAS": False})
    assert torch.equal(loaded.top_down.decoders[1].down.weight, source.top_down.decoders[1].down.weight)


@pytest.mark.parametrize(
    ("overrides", "error", "pattern"),
    [
        ({"MODEL.TRANSFER_TYPE": "adapterx"}, ValueError, r"TRANSFER_TYPE='adapterx' is unknown; choose one of \["),
        ({"MODEL.BACKBONE": "vit_nope_patch16"}, ValueError, r"MODEL.BACKBONE='vit_nope_patch16' is not a timm model"),
        ({"MODEL.BACKBONE": "resnet18"}, ValueError, r"resnet18.*not a supported ViT"),
        ({"MODEL.MODEL_ROOT": "/nonexistent/vit.pth"}, FileNotFoundError, r"/nonexistent/vit.pth does not exist"),
        ({"MODEL.TYPE": "vit_top_down", "MODEL.TRANSFER_TYPE": "prompt"}, ValueError, r"cannot be combined"),
        ({"MODEL.TYPE": "ssl-vit"}, ValueError, r"MODEL.TYPE='ssl-vit' is unknown"),
        ({"DATA.NUMBER_CLASSES": -1}, ValueError, r"DATA.NUMBER_CLASSES must be > 0"),
        ({"MODEL.SIZE": "huge"}, ValueError, r"MODEL.SIZE must be one of"),
        ({"MODEL.TRANSFER_TYPE": "lora", "MODEL.LORA.TARGETS": ["to_q"]}, ValueError, r"\['to_q'\] match no module"),
        ({"MODEL.TRANSFER_TYPE": "linear", "MODEL.TOPDOWN_WEIGHTS": "x.pth"}, ValueError, r"has no top-down path"),
    ],
)
def test_bad_config_fails_with_a_named_culprit(overrides, error, pattern):
    with pytest.raises(error, match=pattern):
        build_model(tiny_cfg(**overrides))


@pytest.mark.parametrize(
    ("name", "content", "pattern"),
    [
        ("weights.txt", b"hello", r"suffix '.txt'"),
        ("garbage.pth", b"not a pickle", r"cannot read .*garbage.pth"),
        ("garbage.safetensors", b"\x00\x01", r"garbage.safetensors"),
    ],
)
def test_bad_weights_file_is_reported(tmp_path, name, content, pattern):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(Exception, match=pattern):
        build_tiny("linear", **{"MODEL.MODEL_ROOT": str(path)})


def test_original_command_line_keys_still_work():
    cfg = tiny_cfg("toast", **{"MODEL.TYPE": "vit_top_down"})
    assert build_model(cfg).transfer_type == "toast"
    cfg = tiny_cfg("toast", **{"MODEL.SIZE": "base", "MODEL.BACKBONE": "vit_base_patch16_224"})
    from visual_classification.models.backbone import backbone_name

    assert backbone_name(cfg) == "vit_base_patch16_224"
    cfg.MODEL.SIZE = "large"
    with pytest.raises(ValueError, match="disagree"):
        backbone_name(tiny_cfg("toast", **{"MODEL.SIZE": "large"}))
