"""Trainable and total parameter counts, overall and per group: the one summary both halves log and record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn


def first_name_part(name: str) -> str:
    """The default group of a parameter: the first component of its name (``top_down``, ``head``, ``base`` ...)."""
    return name.split(".", 1)[0]


@dataclass(frozen=True)
class ParameterSummary:
    """Counts of a model's parameters. ``groups``: ``{group: (trainable, total)}`` in the order first met."""

    trainable: int
    total: int
    groups: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def percent(self) -> float:
        return 100 * self.trainable / self.total if self.total else 0.0

    def line(self) -> str:
        """``trainable T / N parameters (P%); per group: g t/n, ...`` for the log."""
        groups = ", ".join(f"{g} {t:,}/{n:,}" for g, (t, n) in self.groups.items())
        return f"trainable {self.trainable:,} / {self.total:,} parameters ({self.percent:.2f}%); per group: {groups}"


def full_numel(p: torch.Tensor) -> int:
    """Entries of the whole tensor: a ZeRO-3 parameter holds an empty shard and its real size in ``ds_numel``
    (an FSDP2 ``DTensor`` already answers ``numel()`` with the global size)."""
    return int(getattr(p, "ds_numel", p.numel()))


def parameter_summary(model: nn.Module, group_of: Callable[[str], str] = first_name_part) -> ParameterSummary:
    """Counts every parameter once (shared tensors too, as ``model.parameters()`` does), at its whole size
    also where an engine partitions it."""
    trainable = total = 0
    groups: dict[str, tuple[int, int]] = {}
    for name, p in model.named_parameters():
        n = full_numel(p)
        t = n if p.requires_grad else 0
        trainable, total = trainable + t, total + n
        group = group_of(name)
        old_t, old_n = groups.get(group, (0, 0))
        groups[group] = (old_t + t, old_n + n)
    return ParameterSummary(trainable, total, groups)
