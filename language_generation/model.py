"""The language model from a config: base weights, the transfer method (:mod:`.methods`), tokenizer.

TOAST's policy (which top-down tensors train, where its weights start) is :mod:`.toast_policy`, its
installation into the model (the two-pass forward, its caches, adapter files) :mod:`.toast_install`; their
names, and :func:`attach_toast` (:mod:`.methods.toast`), are re-exported here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from yacs.config import CfgNode

from runkit.cli import UserError
from toast.summary import parameter_summary

from .config import holds_fp32_master_weights
from .methods import TRANSFER_METHODS
from .toast_policy import toast_cfg_problems

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


@contextlib.contextmanager
def model_found(source: str) -> Iterator[None]:
    """A model, tokenizer or config that cannot be found (a mistyped folder or hub name, no network and nothing
    cached) is a user's mistake, named in one line: ``transformers`` says so with an OSError that has no errno."""
    try:
        yield
    except OSError as err:
        if err.errno is not None:
            raise
        raise UserError(
            f"cannot load a model from {source!r} (MODEL.NAME_OR_PATH, or the run folder): {' '.join(str(err).split())}"
        ) from err


def load_base_model(cfg: CfgNode, dtype: torch.dtype | None = None) -> PreTrainedModel:
    """The base model in ``MODEL.DTYPE`` (or ``dtype``)."""
    kwargs = {"dtype": dtype or DTYPES[cfg.MODEL.DTYPE], "trust_remote_code": cfg.MODEL.TRUST_REMOTE_CODE}
    if cfg.MODEL.ATTN_IMPLEMENTATION:
        kwargs["attn_implementation"] = cfg.MODEL.ATTN_IMPLEMENTATION
    with model_found(cfg.MODEL.NAME_OR_PATH):
        return AutoModelForCausalLM.from_pretrained(cfg.MODEL.NAME_OR_PATH, **kwargs)


def with_model_path(cfg: CfgNode, path: str | Path) -> CfgNode:
    """A copy of ``cfg`` that loads from ``path`` (a run folder holding a tokenizer or a whole model)."""
    local = cfg.clone()
    local.defrost()
    local.MODEL.NAME_OR_PATH = str(path)
    return local


def build_model(cfg: CfgNode) -> nn.Module:
    """The configured model: the base model, then the method ``MODEL.TRANSFER_TYPE`` names in :mod:`.methods`
    (a :class:`ToastCausalLM`, a ``peft`` model, the whole model fine-tuned, or one registered elsewhere)."""
    _check_cfg(cfg)
    method = TRANSFER_METHODS.lookup(cfg.MODEL.TRANSFER_TYPE)
    master = holds_fp32_master_weights(cfg)
    model = method.build(load_base_model(cfg, torch.float32 if master else None), cfg)
    if master:
        logger.info(
            "%s on a %s base: weights held and updated in float32, computed in %s under "
            "the Trainer's autocast (MODEL.TRAINABLE_DTYPE float32)",
            method.name,
            cfg.MODEL.DTYPE,
            cfg.MODEL.DTYPE,
        )
    logger.info("model %s | transfer %s | %s", cfg.MODEL.NAME_OR_PATH, method.name, parameter_summary(model).line())
    return model


def build_tokenizer(cfg: CfgNode):
    """The model's tokenizer; a missing pad token becomes the EOS token (no embedding resize)."""
    with model_found(cfg.MODEL.NAME_OR_PATH):
        tokenizer = AutoTokenizer.from_pretrained(
            cfg.MODEL.NAME_OR_PATH, trust_remote_code=cfg.MODEL.TRUST_REMOTE_CODE
        )
    if tokenizer.pad_token is None:
        logger.info(
            "the tokenizer has no pad token; using its EOS token %r for padding (labels mask it)", tokenizer.eos_token
        )
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
