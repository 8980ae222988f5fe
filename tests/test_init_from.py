"""MODEL.INIT_FROM: a run starts every adapted tensor but the head from another run's adapter (sequential transfer)."""

from __future__ import annotations

import pytest
import torch

from toast.adapter import save_adapter

from conftest import build_tiny


def _source_adapter(tmp_path, transfer: str, **overrides):
    """A model of ``transfer`` whose adapted tensors (head included) are moved away from their start, saved."""
    model = build_tiny(transfer, seed=1, **overrides)
    with torch.no_grad():
        for tensor in model.adapter_state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(0.5)
    folder = save_adapter(model, tmp_path / "source" / "best", model.adapter_config())
    return model, folder


@pytest.mark.parametrize("transfer", ["bias", "lora", "prompt", "end2end", "toast"])
def test_init_from_loads_everything_but_the_head(tmp_path, transfer):
    source, folder = _source_adapter(tmp_path, transfer)
    fresh = build_tiny(transfer, seed=2)
    started = build_tiny(transfer, seed=2, **{"MODEL.INIT_FROM": str(folder)})
    theirs, ours, before = source.adapter_state_dict(), started.adapter_state_dict(), fresh.adapter_state_dict()
    body = [n for n in ours if not n.startswith("head.")]
    assert body
    for name in body:
        torch.testing.assert_close(ours[name], theirs[name], atol=0, rtol=0)
        assert not torch.equal(before[name], theirs[name])  # the load changed something
    for name in (n for n in ours if n.startswith("head.")):
        torch.testing.assert_close(ours[name], before[name], atol=0, rtol=0)  # the head starts fresh


def test_init_from_refuses_another_transfer_type(tmp_path):
    _, folder = _source_adapter(tmp_path, "lora")
    with pytest.raises(ValueError, match="MODEL.INIT_FROM=.*transfer type 'lora', this run uses 'bias'"):
        build_tiny("bias", **{"MODEL.INIT_FROM": str(folder)})


def test_init_from_refuses_linear_and_a_folder_without_weights(tmp_path):
    _, folder = _source_adapter(tmp_path, "linear")
    with pytest.raises(ValueError, match="trains nothing but the head"):
        build_tiny("linear", **{"MODEL.INIT_FROM": str(folder)})
    with pytest.raises(FileNotFoundError, match="MODEL.INIT_FROM=.*no adapter.safetensors"):
        build_tiny("bias", **{"MODEL.INIT_FROM": str(tmp_path / "nowhere")})


def test_init_from_refuses_another_shape(tmp_path):
    _, folder = _source_adapter(tmp_path, "prompt")
    with pytest.raises(ValueError, match="tensor .*prompt.* has shape"):
        build_tiny("prompt", **{"MODEL.INIT_FROM": str(folder), "MODEL.PROMPT.NUM_TOKENS": 4})
