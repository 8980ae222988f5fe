"""When the folded top-down path pays (torch-free, so the config can name its choices before torch loads)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

FoldMode = Literal["auto", "always", "never"]
FOLD_MODES = ("auto", "always", "never")


def fold_pays(tokens: int, dim: int, value_widths: Sequence[int]) -> bool:
    """Whether folding costs fewer multiply-adds than the layer-by-layer path for a step of ``tokens`` tokens
    (first-pass positions, padding included) on a path of width ``dim`` steering values of ``value_widths``.

    Per step, folding saves ``tokens · C² · (L + 1)`` (T and every A_i per token, B_i·W_v becomes one product)
    and costs ``C² · Σ (C + Cv_i)`` more (forming the chain and each ``M_i``, less the ``W_v·B_i`` products the
    layer-by-layer path forms too); the backward pass scales both sides alike.
    """
    layers = len(value_widths)
    return tokens * (layers + 1) > sum(dim + width for width in value_widths)
