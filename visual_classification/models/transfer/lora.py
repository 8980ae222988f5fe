"""LoRA (Hu et al. 2021) through ``peft``: rank-r updates on the attention projections (default ``qkv``)."""

from __future__ import annotations

from peft import LoraConfig, inject_adapter_in_model
from torch import nn
from yacs.config import CfgNode

from ..transfer_model import TransferModel
from .registry import TransferMethod, register_transfer


def _build(backbone: nn.Module, head: nn.Module, cfg: CfgNode, backbone_name: str) -> TransferModel:
    lora = cfg.MODEL.LORA
    names = [name for name, _ in backbone.named_modules()]
    targets = list(lora.TARGETS)
    unmatched = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if unmatched:
        leaves = sorted({n.rsplit(".", 1)[-1] for n, m in backbone.named_modules() if isinstance(m, nn.Linear)})
        raise ValueError(
            f"MODEL.LORA.TARGETS {unmatched} match no module of {backbone_name}; its Linear layers: {leaves}"
        )
    config = LoraConfig(r=lora.RANK, lora_alpha=lora.ALPHA, lora_dropout=lora.DROPOUT, target_modules=targets)
    backbone = inject_adapter_in_model(config, backbone)
    return TransferModel(backbone, head, backbone_name=backbone_name, transfer_type="lora")


register_transfer(
    TransferMethod(name="lora", build=_build, trains=lambda name: "lora_" in name, model_types=("vit_bottom_up",))
)
