"""TOAST's policy for a language model: which top-down tensors train (the part sets, ``MODEL.TOAST.TRAIN``),
where the top-down weights start from, and :func:`install_toast`, which installs TOAST (or TOAST-Lite) into a
loaded base model with those choices.

Imports run one way: :mod:`.model` builds from the registry in :mod:`.methods`, whose TOAST methods build
through this module, which installs through :mod:`.toast_install`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import PreTrainedModel
from yacs.config import CfgNode

from runkit.cli import UserError
from toast.adapter import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    convert_original_top_down,
    is_original_top_down_key,
    load_top_down_state,
    read_adapter_top_down,
)
from toast.folded import FoldChoice
from toast.parts import TOP_DOWN_PARTS, trains_top_down
from toast.topdown import TopDownModule

from .toast_install import ToastCausalLM, decoder_layers

__all__ = [
    "FRESH_PATH_SET",
    "ORIGINAL_TUNING_SET",
    "TRAINABLE_DTYPES",
    "TRAINABLE_PARTS",
    "install_toast",
    "read_top_down_weights",
    "toast_cfg_problems",
    "trained_parts",
]

logger = logging.getLogger(__name__)

TRAINABLE_PARTS = set(TOP_DOWN_PARTS)
TRAINABLE_DTYPES = ("float32", "base")
# MODEL.TOAST.TRAIN "auto": what trains when the config does not say.
ORIGINAL_TUNING_SET = ["to_value", "prompt"]  # the original's final recipe, which assumes a pre-tuned A_i
FRESH_PATH_SET = ["down", "to_value", "prompt"]  # a fresh A_i must learn too (a frozen random chain carries nothing)


def toast_cfg_problems(cfg: CfgNode) -> list[str]:
    """What is wrong with ``MODEL.TOAST.TRAIN`` and ``MODEL.TRAINABLE_DTYPE`` of ``cfg`` (empty when nothing); the
    keys with fixed choices (``DECODER_INIT``, ``FOLD``) are checked with the config."""
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
    return problems


def read_top_down_weights(path: str) -> tuple[dict[str, torch.Tensor], str]:
    """Top-down tensors from an adapter folder or an original-release file (``model.decoders.*`` keys); a
    damaged file, or one ``torch.load`` refuses with ``weights_only``, is named with the key."""
    key = f"MODEL.TOPDOWN_WEIGHTS={path!r}"
    source = Path(path)
    if source.is_dir():
        from .run_files import damaged_file  # run_files reads the method registry, which imports this

        for name in (ADAPTER_WEIGHTS, ADAPTER_CONFIG):
            problem = damaged_file(source / name) if (source / name).is_file() else None
            if problem:
                raise UserError(f"{key}: {problem}; give a pre-tuning run folder whose files are whole")
        return read_adapter_top_down(source)
    if not source.is_file():
        raise FileNotFoundError(f"{key} does not exist")
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  (whatever torch says, the file is the culprit)
        raise UserError(
            f"{key}: torch cannot load it as tensors ({type(err).__name__}: {err}); give a pre-tuning run folder "
            "or an original-release checkpoint"
        ) from err
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


def trained_parts(cfg: CfgNode, low_rank: bool) -> list[str]:
    """The top-down parts that train: ``MODEL.TOAST.TRAIN``, or for ``['auto']`` a set that learns.

    With pre-tuned weights (``MODEL.TOPDOWN_WEIGHTS``) ``toast`` trains B_i and p, the original's final
    recipe. Without them A_i is random: its chain of L random maps carries almost nothing to the lower
    layers, and frozen it never learns to (measured: loss flat), so A_i trains too. ``low_rank`` (TOAST-Lite)
    trains the low-rank updates of A_i and B_i, and p, as the original's ``mark_only_lora_as_trainable`` + prompt.
    """
    parts = list(cfg.MODEL.TOAST.TRAIN)
    if parts != ["auto"]:
        logger.info("top-down parts trained: %s (MODEL.TOAST.TRAIN)", parts)
        return parts
    if low_rank:
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


def install_toast(base: PreTrainedModel, cfg: CfgNode, low_rank: bool) -> ToastCausalLM:
    """Installs TOAST (``low_rank``: TOAST-Lite) into ``base`` and sets the trainable tensors of ``cfg``.

    Trainable top-down tensors are held in fp32 on a bf16/fp16 base (``MODEL.TRAINABLE_DTYPE float32``,
    as ``peft`` holds LoRA), so that small updates are not rounded away; the frozen ones take the base's
    dtype. The forward computes in the base's dtype, casting the fp32 tensors as it reads them.
    """
    problems = toast_cfg_problems(cfg)
    if problems:
        raise ValueError("bad language config: " + "; ".join(problems))
    toast_cfg = cfg.MODEL.TOAST
    init = toast_cfg.DECODER_INIT
    # zero_to_value: B_i = 0 on this half's default A_i (normal, the original LLaMA's; trunc_normal on the vision half)
    top_down = TopDownModule(
        base.config.hidden_size,
        len(decoder_layers(base)),
        decoder_init="normal" if init == "zero_to_value" else init,
        recon_scale=toast_cfg.RECON_SCALE,
    )
    if init == "zero_to_value":
        with torch.no_grad():  # B_i = 0: no signal reaches the values, so the model starts as the base
            for decoder in top_down.decoders:
                decoder.to_value.weight.zero_()
    if cfg.MODEL.TOPDOWN_WEIGHTS:
        from .run_inputs import check_top_down_base  # run_inputs reads the method registry, which imports this

        state, source = read_top_down_weights(cfg.MODEL.TOPDOWN_WEIGHTS)
        check_top_down_base(cfg.MODEL.TOPDOWN_WEIGHTS, cfg)
        load_top_down_state(top_down, state, source)
        logger.info("loaded the top-down path from %s", source)
    if low_rank:
        top_down.add_low_rank(toast_cfg.LITE_RANK, toast_cfg.LITE_ALPHA)
    requires_grad = {name: p.requires_grad for name, p in base.named_parameters()}  # unload() restores it
    for p in base.parameters():
        p.requires_grad_(False)
    parts = set(trained_parts(cfg, low_rank))
    trainable_dtype = torch.float32 if cfg.MODEL.TRAINABLE_DTYPE == "float32" else base.dtype
    for name, p in top_down.named_parameters():
        trains = trains_top_down(name, parts, low_rank=low_rank)
        p.requires_grad_(trains)
        p.data = p.data.to(device=base.device, dtype=trainable_dtype if trains else base.dtype)
    return ToastCausalLM(
        base,
        top_down,
        recon_coef=toast_cfg.RECON_COEF,
        base_requires_grad=requires_grad,
        fold=FoldChoice(toast_cfg.FOLD),
    )
