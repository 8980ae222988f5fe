"""The VPT model (visual prompt tuning, Jia et al. 2022): learned tokens inserted after the prefix tokens.

VPT-deep replaces them before every block with that block's own tokens; VPT-shallow inserts them once.
Initialisation is xavier-uniform over the patch fan-in, as in the original.
"""

from __future__ import annotations

import math
from functools import reduce
from operator import mul

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from .backbone import model_width
from .transfer_model import TransferModel


class PromptedViT(TransferModel):
    """A timm VisionTransformer whose blocks see ``num_tokens`` prompt tokens after the CLS/register tokens."""

    def __init__(
        self,
        backbone: VisionTransformer,
        head: nn.Module,
        *,
        backbone_name: str,
        num_tokens: int,
        deep: bool,
        dropout: float,
        transfer_type: str,
    ) -> None:
        super().__init__(backbone, head, backbone_name=backbone_name, transfer_type=transfer_type)
        if num_tokens <= 0:
            raise ValueError(f"MODEL.PROMPT.NUM_TOKENS must be > 0, got {num_tokens}")
        width = model_width(backbone)
        patch = backbone.patch_embed.patch_size
        bound = math.sqrt(6.0 / float(3 * reduce(mul, patch, 1) + width))
        self.num_tokens = num_tokens
        self.prompt_tokens = nn.Parameter(torch.empty(1, num_tokens, width).uniform_(-bound, bound))
        depth = len(backbone.blocks)
        self.prompt_deep_tokens = (
            nn.Parameter(torch.empty(depth - 1, num_tokens, width).uniform_(-bound, bound)) if deep else None
        )
        self.prompt_dropout = nn.Dropout(dropout)

    def _prompts(self, tokens: torch.Tensor, batch: int) -> torch.Tensor:
        return self.prompt_dropout(tokens.expand(batch, -1, -1))

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone tokens after the final norm, with the prompt tokens taken out again (same layout as timm's)."""
        bb = self.backbone
        x = bb.norm_pre(bb.patch_drop(bb._pos_embed(bb.patch_embed(images))))
        batch, prefix = x.shape[0], bb.num_prefix_tokens
        x = torch.cat([x[:, :prefix], self._prompts(self.prompt_tokens, batch), x[:, prefix:]], dim=1)
        for i, block in enumerate(bb.blocks):
            if i > 0 and self.prompt_deep_tokens is not None:
                deep = self._prompts(self.prompt_deep_tokens[i - 1 : i], batch)
                x = torch.cat([x[:, :prefix], deep, x[:, prefix + self.num_tokens :]], dim=1)
            x = block(x)
        x = bb.norm(x)
        return torch.cat([x[:, :prefix], x[:, prefix + self.num_tokens :]], dim=1)
