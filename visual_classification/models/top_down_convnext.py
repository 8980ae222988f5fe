"""TOAST on a timm ConvNeXt (the original's secondary backbone, ``reference/original_codebase.md`` A.4).

There is no attention to steer: the top-down signal enters the *input* of each down-sampling stage (the
first one at the image). Pass 1 output: the last stage's map x (B×C×h×w). Selection: the cosine of each
position of the head-normed map with the prompt p, clamped to [0, 1]; ``y = x ⊙ m`` scaled channel-wise by
T (a C-vector, ones). Feedback, last stage first: ``u_i = A_i(u_{i+1})`` with A_i a bias-free transposed
convolution (k2 s2; k4 s4 down to the 3-channel image), and ``td_i = B_i(u_i)`` with B_i a bias-free 1×1
convolution. Pass 2 adds td_0 to the image and td_i to the input of stage i (i ≥ 1). The reconstruction
loss is not implemented for ConvNeXt (the original computed it at 0.01 and discarded it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models.convnext import ConvNeXt
from torch import nn

from .transfer_model import TransferModel


class ConvTopDownDecoder(nn.Module):
    """``down`` (A_i): transposed convolution to stage i's input; ``to_value`` (B_i): 1×1 convolution."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.down = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=stride, stride=stride, bias=False)
        self.to_value = nn.Conv2d(out_channels, out_channels, kernel_size=1, bias=False)


class ConvTopDownModule(nn.Module):
    def __init__(self, dims: list[int], stem_stride: int) -> None:
        super().__init__()
        self.prompt = nn.Parameter(torch.randn(dims[-1]))
        self.transform = nn.Parameter(torch.ones(dims[-1]))
        inputs = [3, *dims[:-1]]  # what each stage's input has: the image, then the previous stage's output
        self.decoders = nn.ModuleList(
            ConvTopDownDecoder(dims[i], inputs[i], stem_stride if i == 0 else 2) for i in range(len(dims))
        )
        for decoder in self.decoders:
            nn.init.trunc_normal_(decoder.down.weight, std=0.02)
            nn.init.trunc_normal_(decoder.to_value.weight, std=0.02)

    def token_mask(self, normed: torch.Tensor) -> torch.Tensor:
        """``clamp(cos(x_hw, p), 0, 1)`` per position, B×1×h×w."""
        cos = torch.einsum("bchw,c->bhw", F.normalize(normed, dim=1), F.normalize(self.prompt, dim=0))
        return cos.clamp(0, 1).unsqueeze(1)

    def signals(self, features: torch.Tensor, normed: torch.Tensor) -> list[torch.Tensor]:
        u = features * self.token_mask(normed) * self.transform.view(1, -1, 1, 1)
        signals: list[torch.Tensor] = [features] * len(self.decoders)
        for i in range(len(self.decoders) - 1, -1, -1):
            u = self.decoders[i].down(u)
            signals[i] = self.decoders[i].to_value(u)
        return signals


class TopDownConvNeXt(TransferModel):
    def __init__(self, backbone: ConvNeXt, head: nn.Module, *, backbone_name: str, transfer_type: str) -> None:
        super().__init__(backbone, head, backbone_name=backbone_name, transfer_type=transfer_type)
        dims = [stage.blocks[-1].conv_dw.out_channels for stage in backbone.stages]
        stem_stride = backbone.stem[0].stride[0]
        self.top_down = ConvTopDownModule(dims, stem_stride)
        self.recon_loss = None

    def _backbone_trains(self) -> bool:
        return any(p.requires_grad for p in self.backbone.parameters())

    def forward_two_pass(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """(pass-2 map, pass-1 map, per-stage signals)."""
        bb = self.backbone
        with torch.set_grad_enabled(torch.is_grad_enabled() and self._backbone_trains()):
            first = bb.forward_features(images)
        signals = self.top_down.signals(first, bb.head.norm(first))
        x = bb.stem(images + signals[0])
        for i, stage in enumerate(bb.stages):
            x = stage(x + signals[i] if i > 0 else x)
        return bb.norm_pre(x), first, signals

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_two_pass(images)[0]

    def adapter_config(self) -> dict:
        return {**super().adapter_config(), "top_down": "convnext"}
