"""The model every transfer method returns: a timm backbone, maybe adapted, and the task head.

It keeps timm's split (``forward_features`` → tokens, ``forward_head`` → pooled features or logits), so
timm users find their way, and it decides which tensors form the adapter (see :mod:`toast.adapter`).
"""

from __future__ import annotations

import torch
from torch import nn

from toast.summary import parameter_summary

from .transfer.registry import TRANSFER_METHODS


class TransferModel(nn.Module):
    """A backbone transferred by one method; ``model.head`` is the task head.

    Subclasses override :meth:`forward_features` where the method changes the forward (VPT, TOAST); which
    tensors the method adds is its registration's answer (``TransferMethod.added``).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, *, backbone_name: str, transfer_type: str) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.backbone_name = backbone_name
        self.transfer_type = transfer_type

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """All output tokens after the backbone's final norm (B×N×C)."""
        return self.backbone.forward_features(images)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The backbone's own pooling (the CLS token for standard ViTs), then the task head."""
        pooled = self.backbone.forward_head(tokens, pre_logits=True)
        return pooled if pre_logits else self.head(pooled)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))

    def is_added(self, name: str) -> bool:
        """Whether a tensor is added by the transfer method (not part of the pretrained backbone)."""
        return TRANSFER_METHODS.lookup(self.transfer_type).is_added(name)

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """What an adapter file holds: tensors the method added, and every tensor that trains."""
        tensors = {n: p for n, p in self.named_parameters() if p.requires_grad or self.is_added(n)}
        tensors.update({n: b for n, b in self.named_buffers() if self.is_added(n)})
        return tensors

    def adapter_config(self) -> dict:
        return {
            "backbone": self.backbone_name,
            "transfer_type": self.transfer_type,
            "num_classes": self.num_classes,
        }

    @property
    def num_classes(self) -> int:
        last = self.head[-1] if isinstance(self.head, nn.Sequential) else self.head
        return last.out_features

    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, total) parameter counts."""
        counts = parameter_summary(self)
        return counts.trainable, counts.total

    def summary(self) -> str:
        """``backbone | transfer | trainable / total (per group: backbone, head, top_down ...)``."""
        return f"backbone {self.backbone_name} | transfer {self.transfer_type} | {parameter_summary(self).line()}"
