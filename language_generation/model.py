"""The language model from a config: base weights, the transfer method (:mod:`.transfer`), top-down weights, tokenizer.

TOAST's installation into the model (the two-pass forward, its caches, adapter files) is
:mod:`language_generation.toast_install`; its names are re-exported here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from yacs.config import CfgNode

from toast import (
    TOP_DOWN_PARTS,
    TopDownModule,
    convert_original_top_down,
    is_original_top_down_key,
    load_top_down_state,
    parameter_summary,
    read_adapter_top_down,
    trains_top_down,
)

from .toast_install import ToastCausalLM, TwoPassCache, TwoPassDecoderForward, decoder_layers
from .transfer import TRANSFER_METHODS

__all__ = [
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
TRAINABLE_PARTS = set(TOP_DOWN_PARTS)
TRAINABLE_DTYPES = ("float32", "base")
DECODER_INITS = ("normal", "zero_to_value")
# MODEL.TOAST.TRAIN "auto": what trains when the config does not say.
ORIGINAL_TUNING_SET = ["to_value", "prompt"]  # the original's final recipe, which assumes a pre-tuned A_i
FRESH_PATH_SET = ["down", "to_value", "prompt"]  # a fresh A_i must learn too (a frozen random chain carries nothing)


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
    problems += _toast_cfg_problems(cfg)
    if problems:
        raise ValueError("bad language config: " + "; ".join(problems))


def _toast_cfg_problems(cfg: CfgNode) -> list[str]:
    problems = []
    parts = list(cfg.MODEL.TOAST.TRAIN)
    if parts != ["auto"]:
        unknown = set(parts) - TRAINABLE_PARTS
        if unknown:
            problems.append(
                f"MODEL.TOAST.TRAIN has {sorted(unknown)}; parts are {sorted(TRAINABLE_PARTS)} (or ['auto'])"
            )
    if cfg.MODEL.TRAINABLE_DTYPE not in TRAINABLE_DTYPES:
        problems.append(f"MODEL.TRAINABLE_DTYPE={cfg.MODEL.TRAINABLE_DTYPE!r}; choose one of {list(TRAINABLE_DTYPES)}")
    if cfg.MODEL.TOAST.DECODER_INIT not in DECODER_INITS:
        problems.append(
            f"MODEL.TOAST.DECODER_INIT={cfg.MODEL.TOAST.DECODER_INIT!r}; choose one of {list(DECODER_INITS)}"
        )
    return problems


def load_base_model(cfg: CfgNode) -> PreTrainedModel:
    kwargs = {"dtype": DTYPES[cfg.MODEL.DTYPE], "trust_remote_code": cfg.MODEL.TRUST_REMOTE_CODE}
    if cfg.MODEL.ATTN_IMPLEMENTATION:
        kwargs["attn_implementation"] = cfg.MODEL.ATTN_IMPLEMENTATION
    return AutoModelForCausalLM.from_pretrained(cfg.MODEL.NAME_OR_PATH, **kwargs)


def read_top_down_weights(path: str) -> tuple[dict[str, torch.Tensor], str]:
    """Top-down tensors from an adapter folder or an original-release file (``model.decoders.*`` keys)."""
    source = Path(path)
    if source.is_dir():
        return read_adapter_top_down(source)
    if not source.is_file():
        raise FileNotFoundError(f"MODEL.TOPDOWN_WEIGHTS={path!r} does not exist")
    state = torch.load(source, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    prefix = "model." if any(k.startswith("model.decoders.") for k in state) else ""
    top_down = convert_original_top_down(state, prefix)
    others = sum(1 for k in state if not is_original_top_down_key(k, prefix))
    if others:
        logger.info("%s: ignoring %d tensors that are not part of the top-down path", source, others)
    if not top_down:
        raise ValueError(
            f"{source} holds no top-down tensors (model.decoders.*, model.prompt, model.top_down_transform)"
        )
    return top_down, str(source)


def trained_parts(cfg: CfgNode) -> list[str]:
    """The top-down parts that train: ``MODEL.TOAST.TRAIN``, or for ``['auto']`` a set that learns.

    With pre-tuned weights (``MODEL.TOPDOWN_WEIGHTS``) ``toast`` trains B_i and p, the original's final
    recipe. Without them A_i is random: its chain of L random maps carries almost nothing to the lower
    layers, and frozen it never learns to (measured: loss flat), so A_i trains too. ``toast-lite`` trains
    the low-rank updates of A_i and B_i, and p, as the original's ``mark_only_lora_as_trainable`` + prompt.
    """
    parts = list(cfg.MODEL.TOAST.TRAIN)
    if parts != ["auto"]:
        logger.info("top-down parts trained: %s (MODEL.TOAST.TRAIN)", parts)
        return parts
    if cfg.MODEL.TRANSFER_TYPE == "toast-lite":
        why = "toast-lite: the low-rank updates of A_i and B_i, and p, as the original"
        parts = FRESH_PATH_SET
    elif cfg.MODEL.TOPDOWN_WEIGHTS:
        why = "pre-tuned weights given: B_i and p, the original's recipe"
        parts = ORIGINAL_TUNING_SET
    else:
        why = "no MODEL.TOPDOWN_WEIGHTS: a fresh, frozen A_i would learn nothing, so A_i trains with B_i and p"
        parts = FRESH_PATH_SET
    logger.info("top-down parts trained: %s (MODEL.TOAST.TRAIN auto; %s)", parts, why)
    return parts


def attach_toast(base: PreTrainedModel, cfg: CfgNode) -> ToastCausalLM:
    """Installs TOAST (or TOAST-Lite) into ``base`` and sets the trainable tensors of ``cfg``.

    Trainable top-down tensors are held in fp32 on a bf16/fp16 base (``MODEL.TRAINABLE_DTYPE float32``,
    as ``peft`` holds LoRA), so that small updates are not rounded away; the frozen ones take the base's
    dtype. The forward computes in the base's dtype, casting the fp32 tensors as it reads them.
    """
    problems = _toast_cfg_problems(cfg)
    if problems:
        raise ValueError("bad language config: " + "; ".join(problems))
    toast_cfg = cfg.MODEL.TOAST
    top_down = TopDownModule(
        base.config.hidden_size, len(decoder_layers(base)), decoder_init="normal", recon_scale=toast_cfg.RECON_SCALE
    )
    if toast_cfg.DECODER_INIT == "zero_to_value":
        with torch.no_grad():  # B_i = 0: no signal reaches the values, so the model starts as the base
            for decoder in top_down.decoders:
                decoder.to_value.weight.zero_()
    if cfg.MODEL.TOPDOWN_WEIGHTS:
        state, source = read_top_down_weights(cfg.MODEL.TOPDOWN_WEIGHTS)
        load_top_down_state(top_down, state, source)
        logger.info("loaded the top-down path from %s", source)
    lite = cfg.MODEL.TRANSFER_TYPE == "toast-lite"
    if lite:
        top_down.add_low_rank(toast_cfg.LITE_RANK, toast_cfg.LITE_ALPHA)
    requires_grad = {name: p.requires_grad for name, p in base.named_parameters()}  # unload() restores it
    for p in base.parameters():
        p.requires_grad_(False)
    parts = set(trained_parts(cfg))
    trainable_dtype = torch.float32 if cfg.MODEL.TRAINABLE_DTYPE == "float32" else base.dtype
    for name, p in top_down.named_parameters():
        trains = trains_top_down(name, parts, low_rank=lite)
        p.requires_grad_(trains)
        p.data = p.data.to(device=base.device, dtype=trainable_dtype if trains else base.dtype)
    return ToastCausalLM(base, top_down, recon_coef=toast_cfg.RECON_COEF, base_requires_grad=requires_grad)


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
