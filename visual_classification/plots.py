"""Figures a run leaves behind: training curves per run, and a bar chart of methods per VTAB group."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from runkit.files import read_jsonl, save_figure  # noqa: E402


def _head_lr_mult(run_dir: Path) -> float | None:
    """SOLVER.HEAD_LR_MULT from the run's config.yaml beside the metrics, when it is there."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    solver = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("SOLVER", {})
    return solver.get("HEAD_LR_MULT")


def epoch_number(record: dict) -> int:
    """The epoch counted from 1, as metrics.jsonl, results.json, best/ and the console all count it."""
    return record["epoch"]


def best_val_epoch(records: list[dict]) -> int | None:
    """The epoch (from 1) with the highest val top-1, the first of ties (the one the run keeps); None without val."""
    scored = [(r["val"]["top1"], -epoch_number(r)) for r in records if r.get("val")]
    return -max(scored)[1] if scored else None


def plot_curves(metrics_jsonl: Path, out_png: Path) -> Path:
    """Train loss, val (and test) top-1 and the learning rates per epoch, from a run's ``metrics.jsonl``.

    Whole-epoch ticks; the best validation epoch (the one ``best/`` holds) is marked on every panel; the
    head's lr is drawn beside the rest when ``SOLVER.HEAD_LR_MULT`` (from the run's config.yaml) is not 1.
    """
    records = read_jsonl(metrics_jsonl)
    if not records:
        raise ValueError(f"{metrics_jsonl} holds no epochs to plot")
    epochs = [epoch_number(r) for r in records]
    best = best_val_epoch(records)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    axes[0].plot(epochs, [r["train_loss"] for r in records], marker="o")
    axes[0].set_title("train loss")
    for split in ("val", "test"):
        values = [r[split]["top1"] if r.get(split) else None for r in records]
        if any(v is not None for v in values):
            axes[1].plot(epochs, values, marker="o", label=split)
    axes[1].set_title("top-1 (%)")
    lrs = [r["lr"] for r in records]
    mult = _head_lr_mult(Path(metrics_jsonl).parent)
    two_rates = mult is not None and mult != 1.0
    if two_rates:  # rates 100× apart: a log scale, where the schedule's final 0 has no place
        lrs = [lr if lr > 0 else None for lr in lrs]
        axes[2].set_yscale("log")
    axes[2].plot(epochs, lrs, marker="o", label="BASE_LR × schedule")
    if two_rates:
        axes[2].plot(epochs, [lr * mult if lr else None for lr in lrs], marker="s", label=f"head (× {mult:g})")
    axes[2].set_title("learning rate (end of epoch)")
    for ax in axes:
        if best is not None:
            ax.axvline(best, color="grey", linestyle="--", linewidth=1, label=f"best val (epoch {best})")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)  # every epoch shown, also where the lr has reached 0
        ax.grid(alpha=0.3)
    for ax in axes[1:]:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_png)


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
    return save_figure(fig, out_png)
