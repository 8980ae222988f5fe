"""Folded feedback: the whole top-down path after the token mask as one matrix.

Once selected, the signal is linear all the way into the values: layer i's value receives
``s · T · A_{L-1}ᵀ ⋯ A_iᵀ · B_iᵀ · W_vᵢᵀ (+ b_v)`` with ``s = z ⊙ m`` (row vectors, ``Linear(x) = x Wᵀ``).
The products for every layer are formed side by side in one ``C × ΣCv`` matrix, and a token's value additions
for every layer come from a single matmul instead of L chained ones plus L injections. Only the mask
``m = clamp(cos(z, p), 0, 1)`` stays per token.

- Inference (:class:`FoldedFeedback`): formed once in float64, kept until one of the tensors it was made from
  changes (``load_state_dict``, an optimizer step: tensor version counters say when).
- Training (:class:`TrainableFold`): formed again every step, with autograd through the products, so every
  gradient is the layer-by-layer path's up to float rounding. Forming costs about ``L·C²·(C + 2·Cv)``
  multiply-adds per step, applying it ``C·ΣCv`` per token; the layer-by-layer path costs ``C² (T) + Σ(C² + C·Cv)``
  per token plus ``Σ C²·Cv`` per step. :func:`toast.folded_rule.fold_pays` compares the two for a step's
  token count.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

import torch

from .folded_rule import FOLD_MODES, FoldMode, fold_pays
from .steering import ValueSteering
from .topdown import TopDownModule


def fold_products(
    top_down: TopDownModule, steering: ValueSteering, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor | None, list[int]]:
    """``[M_0 | … | M_{L-1}]`` with ``M_i = T A_{L-1}ᵀ ⋯ A_iᵀ B_iᵀ W_vᵢᵀ``, formed in ``dtype`` (differentiable where
    autograd is on), the value biases side by side when ``double_bias`` adds them again, and each layer's width."""
    device = steering.targets[0].value_weight().device
    chain = top_down.transform.to(device, dtype)
    blocks: list[torch.Tensor] = [None] * top_down.num_layers
    for i in range(top_down.num_layers - 1, -1, -1):
        decoder = top_down.decoders[i]
        chain = chain @ decoder.down.effective_weight().to(device, dtype).t()
        value_weight = steering.targets[i].value_weight().to(dtype)
        blocks[i] = chain @ (value_weight @ decoder.to_value.effective_weight().to(device, dtype)).t()
    bias = None
    if steering.double_bias:
        bias = torch.cat([target.value_bias() for target in steering.targets])
    return torch.cat(blocks, dim=1), bias, [block.shape[1] for block in blocks]


def _additions(
    top_down: TopDownModule, matrix: torch.Tensor, bias: torch.Tensor | None, widths: list[int], features: torch.Tensor
) -> list[torch.Tensor]:
    """Every layer's value addition (bottom layer first), each ``features.shape[:-1] + (Cv_i,)``.

    The mask is one number per token, so ``(z ⊙ m) M = m ⊙ (z M)``: with ``z`` from a pass without autograd,
    the backward pass needs only ``M``'s gradient (``zᵀ g``) and an element-wise product for ``p``'s, not a
    second product through ``M``.
    """
    flat = features.reshape(-1, features.shape[-1])
    projected = flat @ matrix.to(features.dtype)
    values = projected * top_down.token_mask(features).reshape(-1, 1)
    if bias is not None:
        values = values + bias.to(features.dtype)
    values = values.view(*features.shape[:-1], values.shape[-1])
    return list(values.split(widths, dim=-1))


class FoldedFeedback:
    """``features → [W_v·B_i·u_i (+ b_v) for every layer]`` through one precomputed matrix (inference).

    Args:
        top_down: the (frozen) top-down module.
        steering: the value steering that owns the value projections (``W_v``, ``b_v``, ``double_bias``).
    """

    def __init__(self, top_down: TopDownModule, steering: ValueSteering) -> None:
        self.top_down = top_down
        self.steering = steering
        self.key = _version_key(top_down, steering)
        weight = steering.targets[0].value_weight()
        wide = torch.float32 if weight.device.type == "mps" else torch.float64
        with torch.no_grad():
            matrix, bias, self.widths = fold_products(top_down, steering, wide)
        self.matrix = matrix.to(weight.dtype)
        self.bias = None if bias is None else bias.to(weight.dtype)
        if not torch.compiler.is_compiling():  # CUDA graphs then read the fold in place instead of copying it
            for tensor in (self.matrix, self.bias):
                if tensor is not None:
                    torch._dynamo.mark_static_address(tensor)

    def is_current(self) -> bool:
        """Whether the tensors it was folded from are unchanged (same storage, same version)."""
        return self.key == _version_key(self.top_down, self.steering)

    def __call__(self, features: torch.Tensor) -> list[torch.Tensor]:
        return _additions(self.top_down, self.matrix, self.bias, self.widths, features)


class TrainableFold:
    """The fold formed for one training step, in the top-down tensors' own precision (outside autocast) and with
    autograd through every product: the loss and gradients of the layer-by-layer path, fewer products per token."""

    def __init__(self, top_down: TopDownModule, steering: ValueSteering) -> None:
        self.top_down = top_down
        device_type = steering.targets[0].value_weight().device.type
        dtype = functools.reduce(torch.promote_types, (p.dtype for p in top_down.parameters()))
        with torch.autocast(device_type, enabled=False):  # fp32 trainable tensors on a bf16 base: formed in fp32
            self.matrix, self.bias, self.widths = fold_products(top_down, steering, dtype)

    def __call__(self, features: torch.Tensor) -> list[torch.Tensor]:
        return _additions(self.top_down, self.matrix, self.bias, self.widths, features)


def _sharded(top_down: TopDownModule, steering: ValueSteering) -> bool:
    """Whether an engine partitions these tensors (FSDP2 DTensors, ZeRO-3 shards): read outside a module call they
    are not whole, so the fold is not formed from them."""
    return any(
        hasattr(t, "ds_id") or type(t).__name__ == "DTensor" or t.numel() == 0
        for t in _fold_inputs(top_down, steering)
    )


class FoldChoice:
    """Chooses the top-down path for each forward: ``never`` the layer-by-layer path; ``always`` the fold;
    ``auto`` the fold where :func:`fold_pays` for the call's token count. A reconstruction loss (which needs each
    A_i on its own) and sharded tensors keep the layer-by-layer path. Without autograd (evaluation) the fold is
    kept between calls until a tensor behind it changes; with autograd it is formed for each step."""

    def __init__(self, mode: FoldMode = "auto") -> None:
        if mode not in FOLD_MODES:
            raise ValueError(f"fold mode must be one of {FOLD_MODES}, got {mode!r}")
        self.mode = mode
        self._inference: FoldedFeedback | None = None

    def __call__(
        self, top_down: TopDownModule, steering: ValueSteering, features: torch.Tensor, recon_coef: float
    ) -> Callable[[torch.Tensor], list[torch.Tensor]] | None:
        if self.mode == "never" or recon_coef != 0 or _sharded(top_down, steering):
            return None
        widths = [target.value_weight().shape[0] for target in steering.targets]
        if self.mode == "auto" and not fold_pays(features.shape[:-1].numel(), top_down.dim, widths):
            return None
        if torch.is_grad_enabled() and any(t.requires_grad for t in _fold_inputs(top_down, steering)):
            return TrainableFold(top_down, steering)
        self._inference = folded_feedback(self._inference, top_down, steering)
        return self._inference


def folded_feedback(
    previous: FoldedFeedback | None, top_down: TopDownModule, steering: ValueSteering
) -> FoldedFeedback:
    """``previous`` while it is current, else a fresh fold: one fold per loaded adapter."""
    if previous is not None and previous.top_down is top_down and previous.is_current():
        return previous
    return FoldedFeedback(top_down, steering)


def _fold_inputs(top_down: TopDownModule, steering: ValueSteering) -> list[torch.Tensor]:
    """Every tensor a fold is made from: the top-down path and the value projections' weights and biases."""
    tensors = list(top_down.parameters()) + [target.module.weight for target in steering.targets]
    return tensors + [target.module.bias for target in steering.targets if target.module.bias is not None]


def _version_key(top_down: TopDownModule, steering: ValueSteering) -> tuple:
    return tuple((t.data_ptr(), t._version, t.dtype) for t in _fold_inputs(top_down, steering))


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
