"""Full fine-tuning: every tensor trains; with ``MODEL.TYPE vit_top_down`` the original's top-down ViT as a whole."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .registry import TransferMethod, backbone_as_is, register_transfer

if TYPE_CHECKING:
    from torch import nn
    from yacs.config import CfgNode

    from ..transfer_model import TransferModel


def _build(backbone: nn.Module, head: nn.Module, cfg: CfgNode, backbone_name: str) -> TransferModel:
    if cfg.MODEL.TYPE == "vit_top_down":  # the original's top-down ViT, fine-tuned as a whole
        from ..top_down_vit import build_top_down

        return build_top_down(backbone, head, cfg, backbone_name, transfer_type="end2end", low_rank=False)
    return backbone_as_is("end2end")(backbone, head, cfg, backbone_name)


register_transfer(
    TransferMethod(
        name="end2end",
        build=_build,
        aliases=("finetune",),  # the original's --grid-search-type name
        trains=lambda name: True,
        added=lambda name: name.startswith("top_down."),
        model_types=("vit_bottom_up", "vit_top_down"),
        lr_grid=(0.005, 0.001, 0.0005, 0.0001),
        table_order=50,
        description="full fine-tuning: every tensor",
    )
)
