"""Tiny random Hugging Face causal LMs (LLaMA, Qwen2) with TOAST, built offline."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from language_generation.config import get_cfg
from language_generation.methods.toast import attach_toast

SIZES = dict(
    vocab_size=96,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
)


def tiny_base(family: str = "llama", seed: int = 0):
    torch.manual_seed(seed)
    if family == "llama":
        config = LlamaConfig(**SIZES, pad_token_id=0, bos_token_id=1, eos_token_id=2)
        model = LlamaForCausalLM(config)
    else:
        config = Qwen2Config(**SIZES, pad_token_id=0, bos_token_id=1, eos_token_id=2)
        model = Qwen2ForCausalLM(config)
    model.config._name_or_path = f"tiny-{family}"
    return model.eval()


def tiny_toast(family: str = "llama", seed: int = 0, transfer: str = "toast", signal_scale: float = 0.5, **toast):
    cfg = get_cfg()
    cfg.MODEL.TRANSFER_TYPE = transfer
    for key, value in toast.items():
        setattr(cfg.MODEL.TOAST, key, value)
    model = attach_toast(tiny_base(family, seed), cfg)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # strong, random signals, so that equivalence tests can fail
        for name, p in model.top_down.named_parameters():
            if name != "transform":
                p.copy_(signal_scale * torch.randn(p.shape, generator=gen))
    return model


def save_tiny_llama(folder, tokenizer, seed: int = 0, tokenizer_files: bool = True):
    """A tiny LLaMA with ``tokenizer``'s vocabulary saved as a local model folder (and the tokenizer's files,
    unless ``tokenizer_files`` is False: other weights behind the same folder)."""
    base = tiny_base("llama", seed=seed)
    base.resize_token_embeddings(len(tokenizer))
    base.save_pretrained(folder)
    if tokenizer_files:
        tokenizer.save_pretrained(folder)
    return folder


@contextlib.contextmanager
def refused(capsys, match: str) -> Iterator[list[str]]:
    """Asserts that the block (a CLI's ``main``) stops with exit status 2 and exactly one ``error:`` line on stderr
    matching ``match``; yields a list that holds that line afterwards."""
    line: list[str] = []
    with pytest.raises(SystemExit) as stop:
        yield line
    err = capsys.readouterr().err
    errors = re.findall(r"error: [^\r\n]*", err)  # a progress bar may precede it on its line
    assert stop.value.code == 2 and len(errors) == 1, err
    assert re.search(match, errors[0]), errors[0]
    line.append(errors[0])
