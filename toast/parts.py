"""Which top-down tensors train: one filter for both halves, read when marking tensors and when saving.

A top-down tensor belongs to one *part*: ``down`` (A_i), ``to_value`` (B_i), ``prompt`` (p) or
``transform`` (T). A method trains a set of parts, either the full tensors or, for the low-rank variant
(TOAST-Lite), only the ``lora_*`` updates of the decoders (p and T have no low-rank form and train whole).
"""

from __future__ import annotations

from collections.abc import Iterable

TOP_DOWN_PARTS = ("down", "to_value", "prompt", "transform")
TOP_DOWN_PREFIX = "top_down."


def top_down_part(name: str) -> str:
    """The part of a top-down tensor name relative to the module (``decoders.3.down.weight`` → ``down``)."""
    if name.startswith("decoders."):
        return name.split(".")[2]
    return name


def trains_top_down(name: str, parts: Iterable[str], low_rank: bool) -> bool:
    """Whether the top-down tensor ``name`` (relative to the top-down module) trains.

    Args:
        parts: the parts that train (see :data:`TOP_DOWN_PARTS`).
        low_rank: the decoders train through their ``lora_*`` updates only (TOAST-Lite); otherwise
            ``lora_*`` tensors stay frozen and the full weights train.
    """
    parts = set(parts)
    unknown = parts - set(TOP_DOWN_PARTS)
    if unknown:
        raise ValueError(f"unknown top-down parts {sorted(unknown)}; parts are {list(TOP_DOWN_PARTS)}")
    in_parts = top_down_part(name) in parts
    if low_rank and name.startswith("decoders."):
        return in_parts and "lora_" in name
    return in_parts and "lora_" not in name


def trains_in_model(name: str, parts: Iterable[str], low_rank: bool, prefix: str = TOP_DOWN_PREFIX) -> bool:
    """:func:`trains_top_down` for a whole model's tensor name: tensors outside ``prefix`` are not top-down (False)."""
    return name.startswith(prefix) and trains_top_down(name[len(prefix) :], parts, low_rank)
