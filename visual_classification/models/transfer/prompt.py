"""VPT (visual prompt tuning, Jia et al. 2022): learned tokens after the prefix tokens (the model: ``prompted_vit``)."""

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
    from timm.models.vision_transformer import VisionTransformer

    from ..prompted_vit import PromptedViT

    if not isinstance(backbone, VisionTransformer):
        raise ValueError(
            f"MODEL.TRANSFER_TYPE='prompt' needs a timm VisionTransformer; {backbone_name} is {type(backbone).__name__}"
        )
    p = cfg.MODEL.PROMPT
    return PromptedViT(
        backbone,
        head,
        backbone_name=backbone_name,
        num_tokens=p.NUM_TOKENS,
        deep=p.DEEP,
        dropout=p.DROPOUT,
        transfer_type="prompt",
    )


def _is_prompt(name: str) -> bool:
    return name.startswith("prompt_")


register_transfer(
    TransferMethod(
        name="prompt",
        build=_build,
        trains=_is_prompt,
        added=_is_prompt,
        config_keys=(
            ConfigKey("MODEL.PROMPT.NUM_TOKENS", 100, "VPT prompt tokens per layer"),
            ConfigKey(
                "MODEL.PROMPT.DEEP", True, "VPT-deep: new prompt tokens before every block (False = VPT-shallow)"
            ),
            ConfigKey(
                "MODEL.PROMPT.DROPOUT",
                0.0,
                "dropout on the prompt tokens",
                Range("MODEL.PROMPT.DROPOUT", low=0.0, high=1.0, high_open=True),
            ),
        ),
        lr_grid=(50.0, 25.0, 10.0, 5.0, 2.5, 1.0, 0.5, 0.25, 0.1, 0.05),
        table_order=30,
        description="VPT: learned prompt tokens before the blocks",
    )
)
