"""LoRA (Hu et al. 2021) through ``peft``: rank-r updates on the attention projections (default ``qkv``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runkit.ranges import Range
from toast.registry import ConfigKey

from .registry import TransferMethod, register_transfer

if TYPE_CHECKING:
    from torch import nn
    from yacs.config import CfgNode

    from ..transfer_model import TransferModel


def _build(backbone: nn.Module, head: nn.Module, cfg: CfgNode, backbone_name: str) -> TransferModel:
    from peft import LoraConfig, inject_adapter_in_model
    from torch import nn

    from ..transfer_model import TransferModel

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


def _is_lora(name: str) -> bool:
    return "lora_" in name


register_transfer(
    TransferMethod(
        name="lora",
        build=_build,
        trains=_is_lora,
        added=_is_lora,
        config_keys=(
            ConfigKey("MODEL.LORA.RANK", 4, "LoRA rank (original: 4)", Range("MODEL.LORA.RANK", low=1)),
            ConfigKey("MODEL.LORA.ALPHA", 1.0, "LoRA scale = alpha / rank (original loralib alpha 1 -> 0.25)"),
            ConfigKey(
                "MODEL.LORA.DROPOUT",
                0.0,
                "dropout on the LoRA input",
                Range("MODEL.LORA.DROPOUT", low=0.0, high=1.0, high_open=True),
            ),
            ConfigKey("MODEL.LORA.TARGETS", ("qkv",), "module-name suffixes that get LoRA (peft target_modules)"),
        ),
        lr_grid=(1.0, 0.5, 0.25, 0.1, 0.05, 0.025, 0.01),
        table_order=40,
        description="LoRA (peft) on the attention projections",
    )
)
