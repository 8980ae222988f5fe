"""Tables a paper can use: ``python -m visual_classification.summarize OUTPUT_ROOT [--metric final_test_top1]``.

Reads ``OUTPUT_ROOT/final/<task>/<method>/seed*/results.json`` (written by ``tune``), prints a markdown
table of tasks × methods (mean ± std over seeds), the Natural / Specialized / Structured means for VTAB
tasks, and both averages in use: the mean over tasks and the mean of the three group means. Writes
``summary.md``, ``summary.csv`` and a bar chart of methods per group, ``summary.png``, into OUTPUT_ROOT.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import sys
from pathlib import Path

from toast.files import atomic_write_text

from .data.registry import VTAB_GROUPS, VTAB_TASKS
from .plots import plot_group_bars

METHOD_ORDER = ["linear", "bias", "prompt", "lora", "end2end", "toast-lite", "toast"]


def collect(root: Path, metric: str) -> dict[str, dict[str, list[float]]]:
    """``{task: {method: [metric per seed]}}``; unfinished seeds are left out."""
    table: dict[str, dict[str, list[float]]] = {}
    for path in sorted((root / "final").glob("*/*/seed*/results.json")):
        task, method = path.parts[-4], path.parts[-3]
        value = json.loads(path.read_text(encoding="utf-8")).get(metric)
        if value is not None:
            table.setdefault(task, {}).setdefault(method, []).append(float(value))
    return table


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _task_order(tasks) -> list[str]:
    registered = [t for t in VTAB_TASKS if t in tasks]
    return registered + sorted(t for t in tasks if t not in VTAB_TASKS)


def summarize(root: Path, metric: str = "final_test_top1") -> tuple[str, list[list[str]], dict]:
    """(markdown table, rows for CSV, ``{group or 'all tasks': {method: mean}}`` for the bar chart)."""
    table = collect(root, metric)
    if not table:
        raise FileNotFoundError(f"no finished final runs under {root / 'final'} (expected */*/seed*/results.json)")
    tasks = _task_order(table)
    methods = sorted(
        {m for per in table.values() for m in per},
        key=lambda m: (m not in METHOD_ORDER, METHOD_ORDER.index(m) if m in METHOD_ORDER else 0, m),
    )
    header = ["task", *methods]
    rows = []
    for task in tasks:
        row = [task]
        for method in methods:
            values = table[task].get(method)
            if values:
                mean, std = _mean_std(values)
                row.append(f"{mean:.1f} ± {std:.1f} (n={len(values)})")
            else:
                row.append("-")
        rows.append(row)

    def means(selected: list[str]) -> list[str]:
        out = []
        for method in methods:
            vals = [statistics.fmean(table[t][method]) for t in selected if method in table[t]]
            out.append(f"{statistics.fmean(vals):.1f}" if vals and len(vals) == len(selected) else "-")
        return out

    extra = []
    vtab = [t for t in tasks if t in VTAB_TASKS]
    group_means: dict[str, list[str]] = {}
    for group in VTAB_GROUPS:
        members = [t for t in vtab if VTAB_TASKS[t].group == group]
        if members:
            group_means[group] = means(members)
            extra.append([f"{group} mean ({len(members)} tasks)", *group_means[group]])
    extra.append([f"mean over {len(tasks)} tasks", *means(tasks)])
    bars = {
        name: {m: float(v) for m, v in zip(methods, values) if v != "-"}
        for name, values in [*group_means.items(), ("all tasks", extra[-1][1:])]
    }
    if len(group_means) == len(VTAB_GROUPS):
        mog = []
        for i in range(len(methods)):
            vals = [group_means[g][i] for g in VTAB_GROUPS]
            mog.append("-" if "-" in vals else f"{statistics.fmean(float(v) for v in vals):.1f}")
        extra.append(["mean of group means", *mog])
    all_rows = [header, *rows, *extra]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["| **" + r[0] + "** | " + " | ".join(r[1:]) + " |" for r in extra]
    note = f"\n{metric} in %, mean ± std over seeds; n = finished seeds.\n"
    return "\n".join(lines) + note, all_rows, bars


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="the OUTPUT_DIR given to tune")
    parser.add_argument(
        "--metric",
        default="final_test_top1",
        help="results.json key: final_test_top1 (last epoch; default) or test_top1 (best-val epoch)",
    )
    args = parser.parse_args(argv)
    root = Path(args.root)
    try:
        markdown, rows, bars = summarize(root, args.metric)
    except FileNotFoundError as err:
        sys.exit(f"error: {err}")
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    atomic_write_text(root / "summary.md", markdown)
    atomic_write_text(root / "summary.csv", buffer.getvalue())
    plot_group_bars(bars, root / "summary.png", args.metric)
    print(markdown)
    print(f"written: {root / 'summary.md'}, {root / 'summary.csv'}, {root / 'summary.png'}")


if __name__ == "__main__":
    main()
