"""The task head: a Linear, or an MLP, initialised as the original's head."""

from __future__ import annotations

import math

from torch import nn

HEAD_INITS = ("original", "trunc_normal")


def build_head(
    in_dim: int, num_classes: int, mlp_num: int = 0, dropout: float = 0.1, init: str = "original"
) -> nn.Module:
    """``mlp_num`` × (Linear → ReLU → BatchNorm1d → Dropout), then Linear(·, K).

    ``init="original"``: kaiming-normal (fan_out) weights, and the last bias set to the focal-loss prior
    ``-log((1 - 0.01) / 0.01)``, as the original. With few classes fan_out is small, so the first logits
    are large (std ≈ sqrt(2/K)·‖feature‖); ``"trunc_normal"`` (std 0.01, zero bias) starts near uniform.
    """
    if init not in HEAD_INITS:
        raise ValueError(f"MODEL.HEAD_INIT must be one of {HEAD_INITS}, got {init!r}")
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
    if init == "original":
        nn.init.kaiming_normal_(last.weight, mode="fan_out")
        nn.init.constant_(last.bias, -math.log((1 - 0.01) / 0.01))
    else:
        nn.init.trunc_normal_(last.weight, std=0.01)
        nn.init.zeros_(last.bias)
    if not layers:
        return last
    return nn.Sequential(*layers, last)
