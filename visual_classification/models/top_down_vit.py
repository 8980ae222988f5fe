"""TOAST and TOAST-Lite on a timm ViT: the shared top-down module steering every block's attention value."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from yacs.config import CfgNode

from toast.folded import FoldChoice, FoldedFeedback, folded_inference
from toast.steering import ValueSteering, fused_qkv_target
from toast.topdown import TopDownModule
from toast.two_pass import TwoPassOutput, run_two_passes

from .backbone import model_width
from .transfer_model import TransferModel


class TopDownViT(TransferModel):
    """Two passes through a frozen timm ViT; the second one has every block's value steered top-down.

    First-pass output ``z`` = all tokens after the final norm; the head reads the second pass through the
    backbone's own pooling (the CLS token for standard ViTs). After each forward, :attr:`recon_loss`
    holds ``RECON_COEF × R`` (``None`` when the coefficient is 0) for the trainer to add.
    """

    accepts_first_pass = True  # forward(images, first_pass=tokens) skips pass 1 (the first-pass cache)

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        top_down: TopDownModule,
        *,
        backbone_name: str,
        transfer_type: str,
        double_bias: bool = True,
        recon_coef: float = 0.0,
        both_passes_ce: bool = False,
        fold: FoldChoice | None = None,
    ) -> None:
        super().__init__(backbone, head, backbone_name=backbone_name, transfer_type=transfer_type)
        self.top_down = top_down
        targets = [fused_qkv_target(f"blocks.{i}.attn.qkv", block.attn.qkv) for i, block in enumerate(backbone.blocks)]
        self.steering = ValueSteering(top_down, targets, double_bias=double_bias)
        self.recon_coef = recon_coef
        self.recon_loss: torch.Tensor | None = None
        self.both_passes_ce = both_passes_ce
        self.first_pass_logits: torch.Tensor | None = None
        self._folded: FoldedFeedback | None = None  # kept while the tensors it was folded from are unchanged
        self._fold_in_use = False
        self.fold_choice = fold if fold is not None else FoldChoice()  # the folded path where it costs less

    @contextlib.contextmanager
    def folded_feedback(self) -> Iterator[None]:
        """Inference (``predict``) with the frozen top-down path folded into one matrix (:mod:`toast.folded`),
        formed once per loaded adapter; forwards without autograd inside use it, training never does."""
        if self.training:
            raise RuntimeError("folded feedback is for inference: call model.eval() first")
        with folded_inference(self):
            yield

    def _backbone_trains(self) -> bool:
        return any(p.requires_grad for p in self.backbone.parameters())

    def forward_two_pass(self, images: torch.Tensor, first_pass: torch.Tensor | None = None) -> TwoPassOutput:
        """Both passes' tokens (and the reconstruction loss), for training, visualisation and tests.

        ``first_pass``: pass 1's tokens when they are cached (MODEL.TOAST.CACHE_FIRST_PASS); pass 1 is skipped.
        """
        if getattr(self.backbone, "grad_checkpointing", False):
            raise RuntimeError(
                "TOAST does not support timm gradient checkpointing: the recomputed blocks would miss the top-down signal"
            )
        if first_pass is not None and self._backbone_trains():
            raise ValueError("a cached first pass needs a frozen backbone; this model trains it")

        def run_pass(k: int) -> torch.Tensor:
            return first_pass if k == 0 and first_pass is not None else self.backbone.forward_features(images)

        folded = self._folded if self._fold_in_use and not torch.is_grad_enabled() else None
        return run_two_passes(
            run_pass,
            self.top_down,
            self.steering,
            first_pass_needs_grad=self._backbone_trains(),
            layers=list(self.backbone.blocks),
            recon_coef=0.0 if folded is not None else self.recon_coef,  # prediction needs no reconstruction loss
            folded=folded,
            fold=self.fold_choice,
        )

    def forward_features(self, images: torch.Tensor, first_pass: torch.Tensor | None = None) -> torch.Tensor:
        out = self.forward_two_pass(images, first_pass)
        self.recon_loss = out.recon_loss
        return out.tokens

    def forward(self, images: torch.Tensor, first_pass: torch.Tensor | None = None) -> torch.Tensor:
        """Second-pass logits; with ``both_passes_ce`` in training, the first pass's logits are kept in
        :attr:`first_pass_logits` so that the trainer averages both passes' cross-entropy (AbSViT)."""
        out = self.forward_two_pass(images, first_pass)
        self.recon_loss = out.recon_loss
        self.first_pass_logits = (
            self.forward_head(out.first_pass_tokens) if self.both_passes_ce and self.training else None
        )
        return self.forward_head(out.tokens)

    def adapter_config(self) -> dict:
        return {**super().adapter_config(), "double_bias": self.steering.double_bias}


def build_top_down(
    backbone: nn.Module, head: nn.Module, cfg: CfgNode, backbone_name: str, transfer_type: str, low_rank: bool
) -> TransferModel:
    """The top-down model of ``backbone`` (a ViT, or a ConvNeXt); ``low_rank``: A_i and B_i train through rank-r
    updates (``MODEL.TOAST.LITE_RANK``, ViTs only)."""
    from timm.models.convnext import ConvNeXt

    if isinstance(backbone, ConvNeXt):
        if low_rank:
            raise ValueError(f"{transfer_type} is implemented for ViTs only; use toast (or lora) with a ConvNeXt")
        from .top_down_convnext import TopDownConvNeXt

        return TopDownConvNeXt(backbone, head, backbone_name=backbone_name, transfer_type=transfer_type)
    top_down = TopDownModule(
        model_width(backbone),
        len(backbone.blocks),
        decoder_init=cfg.MODEL.TOAST.DECODER_INIT,
    )
    if low_rank:
        top_down.add_low_rank(cfg.MODEL.TOAST.LITE_RANK, cfg.MODEL.TOAST.LITE_ALPHA)
    return TopDownViT(
        backbone,
        head,
        top_down,
        backbone_name=backbone_name,
        transfer_type=transfer_type,
        double_bias=cfg.MODEL.TOAST.DOUBLE_BIAS,
        recon_coef=cfg.MODEL.TOAST.RECON_COEF,
        both_passes_ce=cfg.MODEL.TOAST.BOTH_PASSES_CE,
        fold=FoldChoice(cfg.MODEL.TOAST.FOLD),
    )
