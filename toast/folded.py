"""Folded feedback: the whole top-down path after the token mask as one matrix, for inference.

Once selected, the signal is linear all the way into the values: layer i's value receives
``s · T · A_{L-1}ᵀ ⋯ A_iᵀ · B_iᵀ · W_vᵢᵀ (+ b_v)`` with ``s = z ⊙ m`` (row vectors, ``Linear(x) = x Wᵀ``).
With the top-down path frozen these products are fixed, so they are formed once, side by side in one
``C × ΣCv`` matrix, and a token's value additions for every layer come from a single matmul instead of
L chained ones plus L injections. Only the mask ``m = clamp(cos(z, p), 0, 1)`` stays per token.

Training never uses it (the product has no gradient path to A, B, p, T as trained). The fold is kept
until one of the tensors it was made from changes (``load_state_dict``, an optimizer step): tensor
version counters say when.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .steering import ValueSteering
from .topdown import TopDownModule


class FoldedFeedback:
    """``features → [W_v·B_i·u_i (+ b_v) for every layer]`` through one precomputed matrix.

    Args:
        top_down: the (frozen) top-down module.
        steering: the value steering that owns the value projections (``W_v``, ``b_v``, ``double_bias``).
    """

    def __init__(self, top_down: TopDownModule, steering: ValueSteering) -> None:
        self.top_down = top_down
        self.steering = steering
        self.key = _version_key(top_down, steering)
        self.matrix, self.bias, self.widths = _fold(top_down, steering)
        if not torch.compiler.is_compiling():  # CUDA graphs then read the fold in place instead of copying it
            for tensor in (self.matrix, self.bias):
                if tensor is not None:
                    torch._dynamo.mark_static_address(tensor)

    def is_current(self) -> bool:
        """Whether the tensors it was folded from are unchanged (same storage, same version)."""
        return self.key == _version_key(self.top_down, self.steering)

    def __call__(self, features: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's value addition (bottom layer first), each ``features.shape[:-1] + (Cv_i,)``."""
        selected = features * self.top_down.token_mask(features)
        flat = selected.reshape(-1, selected.shape[-1])
        matrix = self.matrix.to(features.dtype)
        if self.bias is None:
            values = flat @ matrix
        else:
            values = torch.addmm(self.bias.to(features.dtype), flat, matrix)
        values = values.view(*features.shape[:-1], values.shape[-1])
        return list(values.split(self.widths, dim=-1))


def folded_feedback(
    previous: FoldedFeedback | None, top_down: TopDownModule, steering: ValueSteering
) -> FoldedFeedback:
    """``previous`` while it is current, else a fresh fold: one fold per loaded adapter."""
    if previous is not None and previous.top_down is top_down and previous.is_current():
        return previous
    return FoldedFeedback(top_down, steering)


@torch.no_grad()
def _fold(top_down: TopDownModule, steering: ValueSteering) -> tuple[torch.Tensor, torch.Tensor | None, list[int]]:
    """``[M_0 | … | M_{L-1}]`` with ``M_i = T A_{L-1}ᵀ ⋯ A_iᵀ B_iᵀ W_vᵢᵀ``, formed in float64 and stored in the
    value projections' dtype; the value biases side by side when ``double_bias`` adds them again."""
    first_weight = steering.targets[0].value_weight()
    device, dtype = first_weight.device, first_weight.dtype
    wide = torch.float32 if device.type == "mps" else torch.float64
    chain = top_down.transform.to(device, wide)
    blocks: list[torch.Tensor] = [None] * top_down.num_layers
    for i in range(top_down.num_layers - 1, -1, -1):
        decoder = top_down.decoders[i]
        chain = chain @ decoder.down.effective_weight().to(device, wide).t()
        value_weight = steering.targets[i].value_weight().to(wide)
        blocks[i] = chain @ (value_weight @ decoder.to_value.effective_weight().to(device, wide)).t()
    widths = [block.shape[1] for block in blocks]
    bias = None
    if steering.double_bias:
        bias = torch.cat([target.value_bias() for target in steering.targets]).to(dtype)
    return torch.cat(blocks, dim=1).to(dtype), bias, widths


def _version_key(top_down: TopDownModule, steering: ValueSteering) -> tuple:
    tensors = list(top_down.parameters()) + [target.module.weight for target in steering.targets]
    tensors += [target.module.bias for target in steering.targets if target.module.bias is not None]
    return tuple((t.data_ptr(), t._version, t.dtype) for t in tensors)


@contextlib.contextmanager
def folded_inference(model) -> Iterator[None]:
    """The body of both halves' ``model.folded_feedback()``: ``model`` (with ``top_down``, ``steering`` and the
    ``_folded`` / ``_fold_in_use`` slots its two-pass forward reads) gets its fold, made again only when a
    tensor behind it changed, and uses it inside the block."""
    model._folded = folded_feedback(model._folded, model.top_down, model.steering)
    model._fold_in_use = True
    try:
        yield
    finally:
        model._fold_in_use = False
