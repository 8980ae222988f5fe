"""The task head: a Linear, or an MLP, initialised as the original's head."""

from __future__ import annotations

import math

from torch import nn


def build_head(in_dim: int, num_classes: int, mlp_num: int = 0, dropout: float = 0.1) -> nn.Module:
    """``mlp_num`` × (Linear → ReLU → BatchNorm1d → Dropout), then Linear(·, K).

    As in the original: kaiming-normal (fan_out) weights, and the last bias set to the focal-loss prior
    ``-log((1 - 0.01) / 0.01)`` so that every class starts at probability ~0.01.
    """
    if num_classes <= 0:
        raise ValueError(f"DATA.NUMBER_CLASSES must be > 0 to build a task head, got {num_classes}")
    if mlp_num < 0:
        raise ValueError(f"MODEL.MLP_NUM must be >= 0, got {mlp_num}")
    layers: list[nn.Module] = []
    for _ in range(mlp_num):
        hidden = nn.Linear(in_dim, in_dim)
        nn.init.kaiming_normal_(hidden.weight, mode="fan_out")
        nn.init.zeros_(hidden.bias)
        layers += [hidden, nn.ReLU(inplace=True), nn.BatchNorm1d(in_dim), nn.Dropout(dropout)]
    last = nn.Linear(in_dim, num_classes)
    nn.init.kaiming_normal_(last.weight, mode="fan_out")
    nn.init.constant_(last.bias, -math.log((1 - 0.01) / 0.01))
    if not layers:
        return last
    return nn.Sequential(*layers, last)
