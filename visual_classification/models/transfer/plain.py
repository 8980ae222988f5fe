"""Baselines that only change which tensors train: linear probing, full fine-tuning, BitFit."""

from __future__ import annotations

from torch import nn
from yacs.config import CfgNode

from ..transfer_model import TransferModel
from .registry import TransferMethod, register_transfer


def _plain(name: str):
    def build(backbone: nn.Module, head: nn.Module, cfg: CfgNode, backbone_name: str) -> TransferModel:
        return TransferModel(backbone, head, backbone_name=backbone_name, transfer_type=name)

    return build


def _end2end(backbone: nn.Module, head: nn.Module, cfg: CfgNode, backbone_name: str) -> TransferModel:
    if cfg.MODEL.TYPE == "vit_top_down":  # the original's top-down ViT, fine-tuned as a whole
        from .toast import build_top_down

        return build_top_down(backbone, head, cfg, backbone_name, transfer_type="end2end")
    return TransferModel(backbone, head, backbone_name=backbone_name, transfer_type="end2end")


register_transfer(
    TransferMethod(name="linear", build=_plain("linear"), trains=lambda name: False, model_types=("vit_bottom_up",))
)
register_transfer(
    TransferMethod(
        name="end2end", build=_end2end, trains=lambda name: True, model_types=("vit_bottom_up", "vit_top_down")
    )
)
register_transfer(
    TransferMethod(
        name="bias", build=_plain("bias"), trains=lambda name: name.endswith(".bias"), model_types=("vit_bottom_up",)
    )
)
