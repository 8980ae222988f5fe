"""The top-down module of TOAST ("Refocusing Is Key to Transfer Learning", arXiv 2305.15542).

It reads the frozen backbone's first-pass output, keeps the tokens that match a learned task prior
(select), and sends the result down through one pair of linear maps per layer (feedback). Layer i's
attention value then receives ``W_v · B_i · u_i`` in the second pass (see :mod:`toast.steering`).

Notation follows ``METHOD.md``: ``A_i`` chains the signal to the layer below (:attr:`TopDownDecoder.down`),
``B_i`` turns it into layer i's signal (:attr:`TopDownDecoder.to_value`), ``p`` is :attr:`TopDownModule.prompt`
and ``T`` is :attr:`TopDownModule.transform`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

DecoderInit = Literal["trunc_normal", "normal", "zero_to_value"]
from .config_keys import DECODER_INITS  # noqa: E402  (the config's choices, torch-free)


class DecoderLinear(nn.Module):
    """A bias-free C×C linear map with an optional rank-r update (TOAST-Lite).

    With a low-rank update the weight is ``W + scale · lora_b @ lora_a``; ``W`` is then frozen by the
    transfer method and only ``lora_a``/``lora_b`` train. The effective weight is exposed so that the
    value injection can fold it into one matrix with ``W_v``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, dim))
        self.lora_a: nn.Parameter | None = None
        self.lora_b: nn.Parameter | None = None
        self.lora_scale = 0.0

    def add_low_rank(self, rank: int, alpha: float) -> None:
        """Adds ``lora_a`` (kaiming-uniform) and ``lora_b`` (zeros), as loralib and peft initialise them."""
        if rank <= 0:
            raise ValueError(f"low-rank update needs rank > 0, got {rank}")
        dim = self.weight.shape[0]
        self.lora_a = nn.Parameter(torch.empty(rank, dim))
        self.lora_b = nn.Parameter(torch.zeros(dim, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.lora_scale = alpha / rank

    def effective_weight(self) -> torch.Tensor:
        if self.lora_a is None:
            return self.weight
        weight = self.weight
        return torch.addmm(weight, self.lora_b.to(weight.dtype), self.lora_a.to(weight.dtype), alpha=self.lora_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Computes in ``x``'s dtype: fp32 trainable tensors on a bf16 backbone are cast as they are read."""
        if self.lora_a is None:
            return F.linear(x, self.weight.to(x.dtype))
        # The low-rank path on its own (no C×C weight gradient is formed), added in place.
        flat = x.reshape(-1, x.shape[-1])
        out = flat @ self.weight.to(x.dtype).t()
        out.addmm_(flat @ self.lora_a.to(x.dtype).t(), self.lora_b.to(x.dtype).t(), alpha=self.lora_scale)
        return out.view(*x.shape[:-1], out.shape[-1])

    def extra_repr(self) -> str:
        rank = 0 if self.lora_a is None else self.lora_a.shape[0]
        return f"dim={self.weight.shape[0]}, low_rank={rank}"


class TopDownDecoder(nn.Module):
    """One layer's pair of maps: ``down`` (A_i) chains the signal, ``to_value`` (B_i) emits layer i's signal."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.down = DecoderLinear(dim)
        self.to_value = DecoderLinear(dim)


class TopDownModule(nn.Module):
    """Prompt ``p``, transform ``T`` and one decoder per layer, shared by the vision and language models.

    Args:
        dim: width C of the backbone's tokens.
        num_layers: L, the number of layers whose value receives feedback.
        decoder_init: ``"trunc_normal"`` (std 0.02, the original ViT), ``"normal"`` (std 0.02, the original LLaMA)
            or ``"zero_to_value"`` (A_i trunc-normal std 0.02, every B_i zero: the second pass starts as the
            first, up to the original ViT's extra value bias, as LoRA starts at the identity).
        recon_scale: both operands of the reconstruction loss are divided by this (1 for ViT, 10 for LLaMA).
    """

    def __init__(
        self,
        dim: int,
        num_layers: int,
        decoder_init: DecoderInit = "trunc_normal",
        recon_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if dim <= 0 or num_layers <= 0:
            raise ValueError(f"TopDownModule needs dim > 0 and num_layers > 0, got dim={dim}, num_layers={num_layers}")
        self.dim = dim
        self.num_layers = num_layers
        self.recon_scale = recon_scale
        self.prompt = nn.Parameter(torch.randn(dim))
        self.transform = nn.Parameter(torch.eye(dim))
        self.decoders = nn.ModuleList(TopDownDecoder(dim) for _ in range(num_layers))
        self.reset_decoders(decoder_init)

    @torch.no_grad()
    def reset_decoders(self, init: DecoderInit = "trunc_normal") -> None:
        if init not in DECODER_INITS:
            raise ValueError(f"decoder_init must be one of {', '.join(DECODER_INITS)}; got {init!r}")
        for decoder in self.decoders:
            for linear in (decoder.down, decoder.to_value):
                if init == "normal":
                    nn.init.normal_(linear.weight, std=0.02)
                else:
                    nn.init.trunc_normal_(linear.weight, std=0.02)
            if init == "zero_to_value":  # no signal at the start; B_i still gets a gradient, since u_i is not 0
                nn.init.zeros_(decoder.to_value.weight)

    def add_low_rank(self, rank: int, alpha: float) -> None:
        """Turns every A_i and B_i into ``W + scale · b @ a`` (TOAST-Lite)."""
        for decoder in self.decoders:
            decoder.down.add_low_rank(rank, alpha)
            decoder.to_value.add_low_rank(rank, alpha)

    def token_mask(self, features: torch.Tensor) -> torch.Tensor:
        """``clamp(cos(z_n, p), 0, 1)`` per token, shape B×N×1: how much each token matches the task prior."""
        prompt = F.normalize(self.prompt.to(features.dtype), dim=-1)
        return (F.normalize(features, dim=-1) @ prompt).clamp(0, 1).unsqueeze(-1)

    def select(self, features: torch.Tensor) -> torch.Tensor:
        """``y = (z ⊙ m) @ T``: keeps task-relevant tokens, then maps them by the (right-multiplied) transform."""
        return (features * self.token_mask(features)) @ self.transform.to(features.dtype)

    def forward(self, features: torch.Tensor) -> list[torch.Tensor]:
        """``feedback(select(features))`` as a module call, so that sharding engines (ZeRO-3, FSDP) gather
        ``p`` and ``T`` while it runs."""
        return self.feedback(self.select(features))

    def feedback(self, selected: torch.Tensor) -> list[torch.Tensor]:
        """Runs the chain top layer first and returns ``u_i`` for every layer, bottom layer first.

        Layer i's signal is ``td_i = B_i u_i``; :mod:`toast.steering` applies ``B_i`` folded with ``W_v``
        so that ``td_i`` itself is never materialised. Use :meth:`signals` to get ``td_i`` explicitly.
        """
        chained: list[torch.Tensor] = [selected] * self.num_layers
        u = selected
        for i in range(self.num_layers - 1, -1, -1):
            u = self.decoders[i].down(u)
            chained[i] = u
        return chained

    def signals(self, chained: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """``td_i = B_i u_i`` for every layer (for inspection and tests; training uses the folded form)."""
        return [decoder.to_value(u) for decoder, u in zip(self.decoders, chained)]

    def reconstruction_loss(
        self,
        inputs: Sequence[torch.Tensor],
        outputs: Sequence[torch.Tensor],
        token_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``Σ_i MSE(A_i(out_i) / s, in_i / s)`` with both operands detached: trains A_i to invert layer i.

        ``token_weights`` (B×N): each token's squared error (a mean over channels) is weighted and summed
        instead of averaged over every position, e.g. 1 / (real tokens of the optimizer step) on real tokens
        and 0 on padding, so that padded batches and gradient accumulation give the loss of one whole batch.
        """
        if len(inputs) != self.num_layers or len(outputs) != self.num_layers:
            raise ValueError(
                f"reconstruction loss needs one input and one output per layer ({self.num_layers}), "
                f"got {len(inputs)} inputs and {len(outputs)} outputs"
            )
        scale = self.recon_scale
        total = inputs[0].new_zeros((), dtype=torch.float32)
        for decoder, layer_in, layer_out in zip(self.decoders, inputs, outputs):
            rebuilt = decoder.down(layer_out.detach())
            if token_weights is None:
                total = total + F.mse_loss(rebuilt.float() / scale, layer_in.detach().float() / scale)
            else:
                per_token = ((rebuilt.float() - layer_in.detach().float()) / scale).pow(2).mean(-1)
                total = total + (per_token * token_weights).sum()
        return total
