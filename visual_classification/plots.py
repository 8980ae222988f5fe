"""Figures a run leaves behind: training curves per run, and a bar chart of methods per VTAB group."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from toast.files import atomic_path  # noqa: E402


def plot_curves(metrics_jsonl: Path, out_png: Path) -> Path:
    """Train loss, val (and test) top-1 and learning rate per epoch, from a run's ``metrics.jsonl``."""
    records = [json.loads(line) for line in Path(metrics_jsonl).read_text(encoding="utf-8").splitlines() if line]
    if not records:
        raise ValueError(f"{metrics_jsonl} holds no epochs to plot")
    epochs = [r["epoch"] for r in records]  # counted from 1 (metrics.jsonl, results.json, best/)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    axes[0].plot(epochs, [r["train_loss"] for r in records], marker="o")
    axes[0].set_title("train loss")
    for split in ("val", "test"):
        values = [r[split]["top1"] if r.get(split) else None for r in records]
        if any(v is not None for v in values):
            axes[1].plot(epochs, values, marker="o", label=split)
    axes[1].set_title("top-1 (%)")
    axes[1].legend()
    axes[2].plot(epochs, [r["lr"] for r in records], marker="o")
    axes[2].set_title("SOLVER.BASE_LR × schedule (end of epoch)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(out_png)


def plot_group_bars(groups: dict[str, dict[str, float]], out_png: Path, metric: str) -> Path:
    """``groups[group][method] = mean`` as grouped bars (one group per VTAB group or 'mean')."""
    names = list(groups)
    methods = sorted({m for g in groups.values() for m in g})
    width = 0.8 / max(1, len(methods))
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(names)), 3.5))
    for i, method in enumerate(methods):
        xs = [j + i * width for j in range(len(names))]
        ax.bar(xs, [groups[g].get(method, 0.0) for g in names], width=width, label=method)
    ax.set_xticks([j + width * (len(methods) - 1) / 2 for j in range(len(names))], names)
    ax.set_ylabel(f"{metric} (%)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(out_png)
