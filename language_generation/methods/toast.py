"""TOAST (top-down attention steering) and TOAST-Lite on a causal LM: the top-down path (``MODEL.TOAST.TRAIN``
says which parts train) steering a frozen base; TOAST-Lite trains rank-r updates of A_i and B_i, and p.

The installation itself is :mod:`..toast_install` (the two-pass forward, its caches, adapter files), the
choices it is made with (which tensors train, where the weights start) :mod:`..toast_policy`. A run saves the
adapter only (``adapter.safetensors`` + ``adapter_config.json``), gathered from ZeRO-3 partitions or FSDP2 shards.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn
from transformers import PreTrainedModel
from yacs.config import CfgNode

from runkit.ranges import Range
from toast.adapter import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from toast.config_keys import toast_config_keys
from toast.registry import ConfigKey

from ..toast_install import ToastCausalLM
from ..toast_policy import install_toast
from .registry import TRANSFER_METHODS, OwnTensors, TransferMethod, register_transfer


def _toast(base: PreTrainedModel, cfg: CfgNode) -> ToastCausalLM:
    return install_toast(base, cfg, low_rank=False)


def _toast_lite(base: PreTrainedModel, cfg: CfgNode) -> ToastCausalLM:
    return install_toast(base, cfg, low_rank=True)


def attach_toast(base: PreTrainedModel, cfg: CfgNode) -> ToastCausalLM:
    """The TOAST method ``MODEL.TRANSFER_TYPE`` names installed into an already loaded ``base`` (experiments and
    tests that load the base themselves)."""
    method = TRANSFER_METHODS.lookup(cfg.MODEL.TRANSFER_TYPE)
    if not method.has_top_down:
        with_path = [m.name for m in TRANSFER_METHODS.in_table_order() if m.has_top_down]
        raise ValueError(
            f"MODEL.TRANSFER_TYPE={cfg.MODEL.TRANSFER_TYPE!r} has no top-down path; choose one of {with_path}"
        )
    return method.build(base, cfg)


def _load(cfg: CfgNode, run_dir: Path, base_matched: bool) -> nn.Module:
    """The configured TOAST model with the run's adapter; the adapter's check of the base's name is skipped when
    the base was matched by content (a copy elsewhere is the same model)."""
    from ..model import build_model

    model = build_model(cfg)
    if not isinstance(model, ToastCausalLM):
        raise ValueError(f"MODEL.TRANSFER_TYPE {cfg.MODEL.TRANSFER_TYPE!r} built a {type(model).__name__}, not TOAST")
    model.load_adapter(run_dir, check_base_name=not base_matched)
    return model


def _write(model: ToastCausalLM, folder: Path, state: dict) -> None:
    """The adapter, with the base model's files by content: a top-down path reused on another base of the same
    shape (``MODEL.TOPDOWN_WEIGHTS``) is then refused instead of loading silently."""
    from ..run_inputs import model_fingerprint

    base = model_fingerprint(model.base.config._name_or_path)["files"]
    model.save_adapter(folder, state_dict=state, base_model_files=base)


ADAPTER = OwnTensors(
    state=lambda model: model.adapter_state_dict(),
    write=_write,
    read=lambda model, folder: model.load_adapter(folder),
)
CONFIG_KEYS = (
    ConfigKey(
        "MODEL.TOAST.TRAIN",
        ["auto"],
        "what trains: any of to_value (B_i), down (A_i), prompt (p), transform (T); toast-lite trains the low-rank "
        "updates of the decoder parts named. ['auto']: toast with MODEL.TOPDOWN_WEIGHTS trains B_i and p (the "
        "original's recipe for a pre-tuned path); toast without them trains A_i, B_i and p (a fresh frozen A_i "
        "learns nothing); toast-lite trains the updates of A_i and B_i, and p (the original's)",
    ),
    *toast_config_keys("normal", "1.0 in pre-tuning"),
    ConfigKey(
        "MODEL.TOAST.RECON_SCALE",
        10.0,
        "both operands of the reconstruction loss are divided by this (the original LLaMA's /10)",
        Range("MODEL.TOAST.RECON_SCALE", low=0.0, low_open=True),
    ),
)
_SHARED = dict(
    config_keys=CONFIG_KEYS,
    run_weights=(ADAPTER_WEIGHTS,),
    run_files=(ADAPTER_CONFIG,),
    own_tensors=ADAPTER,
    load=_load,
    has_top_down=True,
)

register_transfer(
    TransferMethod(
        name="toast",
        build=_toast,
        lr_grid=(3e-3, 1e-3, 1e-3 / 3),
        table_order=1,
        description="TOAST: the top-down path steering a frozen base",
        **_SHARED,
    )
)
register_transfer(
    TransferMethod(
        name="toast-lite",
        build=_toast_lite,
        lr_grid=(3e-2, 1e-2, 3e-3),
        table_order=2,
        description="TOAST-Lite: rank-r updates of A_i and B_i, and p",
        **_SHARED,
    )
)
