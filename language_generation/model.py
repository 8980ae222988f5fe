"""The language model from a config: base weights, the transfer method (:mod:`.transfer`), tokenizer.

TOAST's policy (which top-down tensors train, where its weights start, :func:`attach_toast`) is
:mod:`.toast_policy`, its installation into the model (the two-pass forward, its caches, adapter files)
:mod:`.toast_install`; their names are re-exported here.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from yacs.config import CfgNode

from toast import parameter_summary

from .toast_install import ToastCausalLM, TwoPassCache, TwoPassDecoderForward, decoder_layers
from .toast_policy import (
    DECODER_INITS,
    FRESH_PATH_SET,
    ORIGINAL_TUNING_SET,
    TRAINABLE_DTYPES,
    TRAINABLE_PARTS,
    attach_toast,
    read_top_down_weights,
    toast_cfg_problems,
    trained_parts,
)
from .transfer import TRANSFER_METHODS

__all__ = [
    "DECODER_INITS",
    "FRESH_PATH_SET",
    "ORIGINAL_TUNING_SET",
    "TRAINABLE_DTYPES",
    "TRAINABLE_PARTS",
    "ToastCausalLM",
    "TwoPassCache",
    "TwoPassDecoderForward",
    "attach_toast",
    "build_model",
    "build_tokenizer",
    "decoder_layers",
    "load_base_model",
    "read_top_down_weights",
    "trained_parts",
]

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _check_cfg(cfg: CfgNode) -> None:
    problems = []
    if not cfg.MODEL.NAME_OR_PATH:
        problems.append("MODEL.NAME_OR_PATH is empty (a hub name or a local model folder)")
    try:
        TRANSFER_METHODS.canonical(cfg.MODEL.TRANSFER_TYPE)
    except ValueError as unknown:
        problems.append(str(unknown))
    if cfg.MODEL.DTYPE not in DTYPES:
        problems.append(f"MODEL.DTYPE={cfg.MODEL.DTYPE!r}; choose one of {list(DTYPES)}")
    problems += toast_cfg_problems(cfg)
    if problems:
        raise ValueError("bad language config: " + "; ".join(problems))


def load_base_model(cfg: CfgNode) -> PreTrainedModel:
    kwargs = {"dtype": DTYPES[cfg.MODEL.DTYPE], "trust_remote_code": cfg.MODEL.TRUST_REMOTE_CODE}
    if cfg.MODEL.ATTN_IMPLEMENTATION:
        kwargs["attn_implementation"] = cfg.MODEL.ATTN_IMPLEMENTATION
    return AutoModelForCausalLM.from_pretrained(cfg.MODEL.NAME_OR_PATH, **kwargs)


def build_model(cfg: CfgNode) -> nn.Module:
    """The configured model: the base model, then the method ``MODEL.TRANSFER_TYPE`` names in :mod:`.transfer`
    (a :class:`ToastCausalLM`, a ``peft`` LoRA model, or the whole model fine-tuned)."""
    _check_cfg(cfg)
    method = TRANSFER_METHODS.lookup(cfg.MODEL.TRANSFER_TYPE)
    model = method.build(load_base_model(cfg), cfg)
    logger.info("model %s | transfer %s | %s", cfg.MODEL.NAME_OR_PATH, method.name, parameter_summary(model).line())
    return model


def build_tokenizer(cfg: CfgNode):
    """The model's tokenizer; a missing pad token becomes the EOS token (no embedding resize)."""
    tokenizer = AutoTokenizer.from_pretrained(cfg.MODEL.NAME_OR_PATH, trust_remote_code=cfg.MODEL.TRUST_REMOTE_CODE)
    if tokenizer.pad_token is None:
        logger.info(
            "the tokenizer has no pad token; using its EOS token %r for padding (labels mask it)", tokenizer.eos_token
        )
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
