"""Classification metrics: top-1, top-5 (more than 5 classes), ROC-AUC (2 classes), in percent."""

from __future__ import annotations

import torch


def roc_auc(scores: torch.Tensor, positives: torch.Tensor) -> float:
    """Area under the ROC curve from the Mann-Whitney statistic, ties counted as one half."""
    pos, neg = scores[positives], scores[~positives]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = torch.cat([pos, neg]).double()
    ranks = torch.empty_like(order)
    sorted_vals, idx = order.sort()
    ranks[idx] = torch.arange(1, len(order) + 1, dtype=torch.double)
    for value in sorted_vals.unique():  # average ranks of ties
        tied = order == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    rank_sum = ranks[: len(pos)].sum()
    return float((rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    logits, targets = logits.float(), targets.long()
    num_classes = logits.shape[1]
    metrics = {"top1": 100.0 * (logits.argmax(1) == targets).double().mean().item()}
    if num_classes > 5:
        top5 = logits.topk(5, dim=1).indices
        metrics["top5"] = 100.0 * (top5 == targets[:, None]).any(1).double().mean().item()
    if num_classes == 2:
        metrics["rocauc"] = 100.0 * roc_auc(logits.softmax(1)[:, 1], targets == 1)
    return metrics
