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

from toast.summary import parameter_summary

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
    "holds_fp32_master_weights",
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


def holds_fp32_master_weights(cfg: CfgNode) -> bool:
    """Full fine-tuning on a bf16/fp16 base with ``MODEL.TRAINABLE_DTYPE float32``: every weight trains, so every
    weight is held and updated in fp32 (mixed precision's master weights) while the ``Trainer``'s autocast
    (``TRAIN.BF16`` / ``TRAIN.FP16``) computes in half precision. Held in bf16, an AdamW step of 2e-5 on a
    0.02-sized weight is below half a bf16 step and rounds away (the handicap of pure-bf16 full fine-tuning)."""
    return (
        TRANSFER_METHODS.canonical(cfg.MODEL.TRANSFER_TYPE) == "end2end"
        and cfg.MODEL.DTYPE != "float32"
        and cfg.MODEL.TRAINABLE_DTYPE == "float32"
    )


def load_base_model(cfg: CfgNode, dtype: torch.dtype | None = None) -> PreTrainedModel:
    """The base model in ``MODEL.DTYPE`` (or ``dtype``)."""
    kwargs = {"dtype": dtype or DTYPES[cfg.MODEL.DTYPE], "trust_remote_code": cfg.MODEL.TRUST_REMOTE_CODE}
    if cfg.MODEL.ATTN_IMPLEMENTATION:
        kwargs["attn_implementation"] = cfg.MODEL.ATTN_IMPLEMENTATION
    return AutoModelForCausalLM.from_pretrained(cfg.MODEL.NAME_OR_PATH, **kwargs)


def build_model(cfg: CfgNode) -> nn.Module:
    """The configured model: the base model, then the method ``MODEL.TRANSFER_TYPE`` names in :mod:`.transfer`
    (a :class:`ToastCausalLM`, a ``peft`` LoRA model, or the whole model fine-tuned)."""
    _check_cfg(cfg)
    method = TRANSFER_METHODS.lookup(cfg.MODEL.TRANSFER_TYPE)
    master = holds_fp32_master_weights(cfg)
    model = method.build(load_base_model(cfg, torch.float32 if master else None), cfg)
    if master:
        logger.info(
            "end2end on a %s base: weights held and updated in float32, computed in %s under "
            "the Trainer's autocast (MODEL.TRAINABLE_DTYPE float32)",
            cfg.MODEL.DTYPE,
            cfg.MODEL.DTYPE,
        )
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
