"""TOAST (Shi et al. 2023): a frozen backbone run twice, the second pass steered by a top-down path
(A_i, B_i and p train; T stays frozen, at identity or its pre-tuned value). The models: ``top_down_vit``,
``top_down_convnext``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from toast.config_keys import toast_config_keys
from toast.parts import TOP_DOWN_PREFIX, trains_in_model
from toast.registry import ConfigKey

from .registry import FIRST_PASS, TransferMethod, register_transfer

if TYPE_CHECKING:
    from torch import nn
    from yacs.config import CfgNode

    from ..transfer_model import TransferModel

# The MODEL.TOAST keys of the vision half: the shared ones and those only the vision models read.
TOAST_KEYS = (
    *toast_config_keys("trunc_normal", "0.1 for pre-tuning"),
    ConfigKey(
        "MODEL.TOAST.DOUBLE_BIAS",
        True,
        "add the value bias again with the signal, as the original ViT (v = W_v(a+td) + 2 b_v)",
    ),
    ConfigKey(
        "MODEL.TOAST.BOTH_PASSES_CE", False, "pre-tuning option: mean cross-entropy of both passes' logits (AbSViT)"
    ),
    ConfigKey(
        FIRST_PASS.config_key,
        False,
        "TOAST: pass 1's tokens (eval mode: no stochastic depth) computed once per image",
    ),
)
TOAST_LR_GRID = (1.0, 0.5, 0.25, 0.1, 0.05, 0.025, 0.01)
TOAST_PARTS = ("down", "to_value", "prompt")


def _build(backbone: nn.Module, head: nn.Module, cfg: CfgNode, backbone_name: str) -> TransferModel:
    from ..top_down_vit import build_top_down

    return build_top_down(backbone, head, cfg, backbone_name, "toast", low_rank=False)


def is_top_down(name: str) -> bool:
    return name.startswith(TOP_DOWN_PREFIX)


register_transfer(
    TransferMethod(
        name="toast",
        build=_build,
        aliases=("topdown",),  # the original's --grid-search-type name
        trains=lambda name: trains_in_model(name, TOAST_PARTS, False),
        added=is_top_down,
        model_types=("vit_top_down",),
        cache=FIRST_PASS,
        pretunes=True,
        config_keys=TOAST_KEYS,
        lr_grid=TOAST_LR_GRID,
        table_order=70,
        description="TOAST: top-down attention steering of a frozen backbone",
    )
)
