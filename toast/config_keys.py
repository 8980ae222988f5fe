"""The ``MODEL.TOAST.*`` keys both halves read, defined once: each half's TOAST methods list these in their
registration (with the half's decoder init as default) next to the keys only that half has. Torch-free."""

from __future__ import annotations

from runkit.ranges import Range

from .folded_rule import FOLD_MODES
from .registry import ConfigKey

DECODER_INITS = ("trunc_normal", "normal", "zero_to_value")


def toast_config_keys(decoder_init: str, recon_coef_help: str) -> tuple[ConfigKey, ...]:
    """The shared ``MODEL.TOAST`` keys; ``decoder_init`` is the half's default (the original's: ViT trunc_normal,
    LLaMA normal), ``recon_coef_help`` says the half's pre-tuning coefficient."""
    if decoder_init not in DECODER_INITS:
        raise ValueError(f"decoder_init must be one of {DECODER_INITS}, got {decoder_init!r}")
    return (
        ConfigKey(
            "MODEL.TOAST.DECODER_INIT",
            decoder_init,
            "fresh decoders: trunc_normal | normal (std 0.02) | zero_to_value (A_i as trunc_normal, every B_i = 0: "
            "no signal at the start); weights from MODEL.TOPDOWN_WEIGHTS replace any of them",
            choices=DECODER_INITS,
        ),
        ConfigKey(
            "MODEL.TOAST.FOLD",
            "auto",
            "the top-down path as one matrix per forward (toast.folded): auto (where it costs fewer multiply-adds "
            "than the layer-by-layer path for the batch's token count) | always | never; the reconstruction loss "
            "and sharded tensors (ZeRO-3, FSDP) keep the layer-by-layer path",
            choices=FOLD_MODES,
        ),
        ConfigKey(
            "MODEL.TOAST.RECON_COEF",
            0.0,
            f"reconstruction-loss weight: 0 in TOAST tuning (and no extra work), {recon_coef_help}",
            Range("MODEL.TOAST.RECON_COEF", low=0.0),
        ),
        ConfigKey(
            "MODEL.TOAST.LITE_RANK",
            4,
            "toast-lite: rank of the update on every A_i and B_i",
            Range("MODEL.TOAST.LITE_RANK", low=1),
        ),
        ConfigKey(
            "MODEL.TOAST.LITE_ALPHA",
            1.0,
            "toast-lite: update scale = alpha / rank (loralib's alpha 1, as the original)",
            Range("MODEL.TOAST.LITE_ALPHA", low=0.0, low_open=True, note="the update is scaled by alpha / rank"),
        ),
    )
