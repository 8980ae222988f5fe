"""The vision refocusing study's charts: test top-1 per method with every seed, the paired intervals, the budget
curve and the pre-tuning curve."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from experiments.stats import Paired, mean_std  # noqa: E402
from runkit.files import save_figure  # noqa: E402

from .methods import METHODS  # noqa: E402


def _kind(name: str) -> str:
    method = METHODS[name]
    return "TOAST" if method.is_toast else ("source → target" if method.source_stage else "target only")


COLOURS = {"TOAST": "tab:red", "source → target": "tab:blue", "target only": "tab:grey"}


def plot_methods(tests: Mapping[str, Mapping[int, float]], chance: float, out_png: Path) -> Path:
    """One horizontal bar per method (named on the axis): the mean over seeds, a black dot per seed, ±1 std."""
    methods = list(tests)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(methods) + 1.4))
    for y, method in enumerate(methods):
        values = list(tests[method].values())
        mean, std = mean_std(values)
        ax.barh(y, mean, xerr=std, color=COLOURS[_kind(method)], alpha=0.6, capsize=3)
        ax.plot(values, [y] * len(values), "k.", markersize=5)
    ax.set_yticks(range(len(methods)), methods)
    ax.invert_yaxis()
    ax.axvline(chance, color="k", linestyle=":", linewidth=1)
    ax.set_xlabel("target test top-1 (%)\nbar = mean, line = ±1 std, dots = seeds, dotted = chance")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.6) for c in COLOURS.values()]
    fig.legend(handles, list(COLOURS), loc="lower center", ncol=3, fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout(rect=(0, 0.04, 1, 1))  # the legend below the axes, never over a bar
    return save_figure(fig, out_png)


def plot_paired(best: str, results: Mapping[str, Paired], out_png: Path) -> Path:
    """``best − baseline`` per baseline: the mean paired difference and its 95 % interval, with the zero line."""
    names = list(results)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.2))
    for y, name in enumerate(names):
        p = results[name]
        err = None if p.low is None else [[p.mean - p.low], [p.high - p.mean]]
        ax.errorbar(p.mean, y, xerr=err, fmt="o", color=COLOURS[_kind(name)], capsize=4)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.axvline(0.0, color="k", linewidth=1)
    ax.set_xlabel(
        f"{best} − baseline, test top-1 points\n(mean of the paired differences over seeds, 95 % t interval)"
    )
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, out_png)


def plot_budget(
    curves: Mapping[str, Mapping[int, Mapping[int, float]]],
    out_png: Path,
    xlabel: str = "target epochs (train800val200)",
) -> Path:
    """``curves[method][x][seed] = test top-1``: mean ± std over seeds against ``x`` (log axis; linear near 0,
    so that a curve may start at none)."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for method, by_epochs in curves.items():
        epochs = sorted(e for e in by_epochs if by_epochs[e])
        means, stds = zip(*(mean_std(list(by_epochs[e].values())) for e in epochs))
        ax.errorbar(epochs, means, yerr=stds, marker="o", capsize=3, label=method)
    all_epochs = sorted({e for c in curves.values() for e in c})
    if 0 in all_epochs:
        ax.set_xscale("symlog", linthresh=1)
    else:
        ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(all_epochs, [str(e) for e in all_epochs])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test top-1 (%), mean ± std over seeds")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, out_png)
