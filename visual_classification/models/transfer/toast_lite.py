"""TOAST-Lite: TOAST whose A_i and B_i train through rank-r updates (``MODEL.TOAST.LITE_RANK``), with p and T
(ViTs only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from toast.parts import trains_in_model

from .registry import FIRST_PASS, TransferMethod, register_transfer
from .toast import TOAST_KEYS, TOAST_LR_GRID, is_top_down

if TYPE_CHECKING:
    from torch import nn
    from yacs.config import CfgNode

    from ..transfer_model import TransferModel

LITE_PARTS = ("down", "to_value", "prompt", "transform")


def _build(backbone: nn.Module, head: nn.Module, cfg: CfgNode, backbone_name: str) -> TransferModel:
    from ..top_down_vit import build_top_down

    return build_top_down(backbone, head, cfg, backbone_name, "toast-lite", low_rank=True)


register_transfer(
    TransferMethod(
        name="toast-lite",
        build=_build,
        trains=lambda name: trains_in_model(name, LITE_PARTS, True),
        added=is_top_down,
        model_types=("vit_top_down",),
        cache=FIRST_PASS,
        config_keys=TOAST_KEYS,
        lr_grid=TOAST_LR_GRID,
        table_order=60,
        description="TOAST-Lite: low-rank updates of the top-down path",
    )
)
