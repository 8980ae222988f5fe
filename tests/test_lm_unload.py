"""``unload()`` gives the base model back as it was, and ``generate`` stops at every end token of the model."""

from __future__ import annotations

import pytest
import torch
from lm_helpers import tiny_base
from test_lm_data import tokenizer  # noqa: F401  (fixture)

from language_generation import toast_install
from language_generation.config import get_cfg
from language_generation.generate import end_token_ids, generate_all
from language_generation.methods.toast import attach_toast


def _toast(base):
    cfg = get_cfg()
    cfg.MODEL.TOAST.TRAIN = ["to_value", "prompt"]
    return attach_toast(base, cfg)


def test_unload_restores_requires_grad_hooks_and_checkpointing():
    base = tiny_base("llama")
    base.model.embed_tokens.weight.requires_grad_(False)  # a base that was partly frozen already
    before = {n: p.requires_grad for n, p in base.named_parameters()}
    model = _toast(base)
    model.gradient_checkpointing_enable()
    assert not any(p.requires_grad for p in base.parameters())
    assert all(layer.self_attn.v_proj._forward_hooks for layer in base.model.layers)
    assert all(layer.gradient_checkpointing for layer in base.model.layers)
    back = model.unload()
    assert back is base and {n: p.requires_grad for n, p in back.named_parameters()} == before
    assert not any(layer.self_attn.v_proj._forward_hooks for layer in back.model.layers)
    assert not any(layer.gradient_checkpointing for layer in back.model.layers)
    assert "forward" not in back.model.__dict__


def test_unload_takes_back_the_zero3_registrations(monkeypatch):
    pytest.importorskip("deepspeed", reason="DeepSpeed is optional")
    monkeypatch.setattr(toast_install, "is_deepspeed_zero3_enabled", lambda: True)
    model = _toast(tiny_base("llama"))
    v_projs = [layer.self_attn.v_proj for layer in model.base.model.layers]
    assert all(len(v._external_params) == 1 for v in v_projs)  # B_i gathered with its layer's v_proj
    model.unload()
    assert all(len(v._external_params) == 0 for v in v_projs)


class _Recorder(torch.nn.Module):
    """Stands in for a model: records what generate was asked, answers with the prompt."""

    def __init__(self, eos) -> None:
        super().__init__()
        self.generation_config = type("GenerationConfig", (), {"eos_token_id": eos})()
        self.asked = {}

    @property
    def device(self):
        return torch.device("cpu")

    def generate(self, input_ids=None, **kwargs):
        self.asked = kwargs
        return input_ids


def test_generate_keeps_every_end_token_of_the_generation_config(tokenizer):  # noqa: F811
    chat_model = _Recorder([tokenizer.eos_token_id, 7])  # end of text, end of turn
    cfg = get_cfg()
    cfg.GENERATE.TEMPERATURE = 0.0
    cfg.GENERATE.BATCH_SIZE = 2
    generate_all(chat_model, tokenizer, cfg, [{"instruction": "say hi", "input": ""}] * 2)
    assert chat_model.asked["eos_token_id"] == [tokenizer.eos_token_id, 7]
    assert end_token_ids(_Recorder(9), tokenizer) == [9, tokenizer.eos_token_id]
    assert end_token_ids(_Recorder(None), tokenizer) == [tokenizer.eos_token_id]
