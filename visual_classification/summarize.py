"""Tables a paper can use: ``python -m visual_classification.summarize OUTPUT_ROOT [--metric final_test_top1]``.

Finds every ``results.json`` under OUTPUT_ROOT (plain ``train`` runs, ``tune``'s ``final/<task>/<method>/seed*``,
the demo's runs) and groups them by task, method and seed; prints a markdown table of tasks × methods
(mean ± std over seeds; no std for one seed), the Natural / Specialized / Structured means for VTAB tasks,
and both averages in use: the mean over tasks and the mean of the three group means. Writes ``summary.md``,
``summary.csv`` (numeric columns: task, method, mean, std, n) and a bar chart of methods per group,
``summary.png``, into OUTPUT_ROOT.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

import yaml

from runkit.cli import user_errors
from runkit.files import atomic_write_text

from .data.registry import VTAB_GROUPS, VTAB_TASKS
from .models.transfer import TRANSFER_METHODS
from .plots import plot_group_bars

TUNE_GRID = re.compile(r"(?:^|/)val/[^/]+/[^/]+/lr[^/]+_wd[^/]+/results\.json$")  # tune's tuning runs: left out
TUNE_FINAL = re.compile(r"(?:^|/)final/(?P<task>[^/]+)/(?P<method>[^/]+)/seed(?P<seed>[^/]+)/results\.json$")


@dataclass(frozen=True)
class Run:
    task: str
    method: str
    seed: str
    path: Path
    value: float


def _seed(results_path: Path) -> str:
    config = results_path.parent / "config.yaml"
    if config.is_file():
        seed = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("SEED")
        if seed is not None:
            return str(seed)
    return "?"


def find_runs(root: Path, metric: str) -> list[Run]:
    """Every ``results.json`` under ``root`` with ``metric`` set. tune's ``final/<task>/<method>/seed<k>`` names
    the run by its folders (so the demo's ``toast-pretuned`` stays apart from ``toast``); any other run is
    named by its contents (task, transfer type, and the seed in its config.yaml)."""
    runs = []
    for path in sorted(root.rglob("results.json")):
        if TUNE_GRID.search(path.relative_to(root).as_posix()):
            continue
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not a readable results file ({err})") from err
        value = results.get(metric) if isinstance(results, dict) else None
        if value is None:
            continue  # unfinished, or a tuning run that never looks at test
        tuned = TUNE_FINAL.search(path.relative_to(root).as_posix())
        if tuned:
            task, method, seed = tuned["task"], tuned["method"], tuned["seed"]
        else:
            task, method, seed = results.get("task", "?"), results.get("transfer_type", "?"), _seed(path)
        runs.append(Run(task, method, seed, path, float(value)))
    return runs


def collect(root: Path, metric: str) -> dict[str, dict[str, list[float]]]:
    """``{task: {method: [metric per run]}}``; runs that share task, method and seed are named in a warning."""
    table: dict[str, dict[str, list[float]]] = {}
    seen: dict[tuple[str, str, str], Path] = {}
    for run in find_runs(root, metric):
        key = (run.task, run.method, run.seed)
        if key in seen:
            print(
                f"warning: {run.path} and {seen[key]} are both {run.task} / {run.method} / seed {run.seed}; both count"
            )
        seen.setdefault(key, run.path)
        table.setdefault(run.task, {}).setdefault(run.method, []).append(run.value)
    return table


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean, and the sample standard deviation (None for one value: there is no spread to report)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def cell(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.1f} (n=1)" if std is None else f"{mean:.1f} ± {std:.1f} (n={len(values)})"


def _task_order(tasks) -> list[str]:
    registered = [t for t in VTAB_TASKS if t in tasks]
    return registered + sorted(t for t in tasks if t not in VTAB_TASKS)


def _method_order(method: str) -> tuple:
    """Registered methods in their ``table_order``, then any other name a run folder gives (a demo's variant)."""
    registered = method in TRANSFER_METHODS
    return (not registered, TRANSFER_METHODS[method].table_order if registered else 0, method)


def summarize(root: Path, metric: str = "final_test_top1") -> tuple[str, list[list], dict]:
    """(markdown table, numeric CSV rows ``task, method, mean, std, n``, ``{group: {method: mean}}`` for the chart)."""
    table = collect(root, metric)
    if not table:
        raise FileNotFoundError(f"no finished runs under {root}: no results.json with {metric!r} set")
    tasks = _task_order(table)
    methods = sorted({m for per in table.values() for m in per}, key=_method_order)
    header = ["task", *methods]
    rows = [[task, *(cell(table[task][m]) if m in table[task] else "-" for m in methods)] for task in tasks]
    csv_rows: list[list] = [["task", "method", "mean", "std", "n"]]
    for task in tasks:
        for method in methods:
            if method in table[task]:
                mean, std = mean_std(table[task][method])
                csv_rows.append(
                    [task, method, round(mean, 4), "" if std is None else round(std, 4), len(table[task][method])]
                )

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
    for name, *values in extra:  # means over tasks: one number per method, no spread over seeds
        csv_rows += [[name, m, float(v), "", ""] for m, v in zip(methods, values) if v != "-"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["| **" + r[0] + "** | " + " | ".join(r[1:]) + " |" for r in extra]
    note = f"\n{metric} in %, mean ± std over seeds (no std for one seed); n = finished seeds.\n"
    return "\n".join(lines) + note, csv_rows, bars


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="a folder of runs (any depth), e.g. the OUTPUT_DIR given to tune")
    parser.add_argument(
        "--metric",
        default="final_test_top1",
        help="results.json key: final_test_top1 (last epoch; default) or test_top1 (best-val epoch)",
    )
    args = parser.parse_args(argv)
    root = Path(args.root)
    with user_errors():
        markdown, rows, bars = summarize(root, args.metric)
        buffer = io.StringIO()
        csv.writer(buffer).writerows(rows)
        atomic_write_text(root / "summary.md", markdown)
        atomic_write_text(root / "summary.csv", buffer.getvalue())
        plot_group_bars(bars, root / "summary.png", args.metric)
    print(markdown)
    print(f"written: {root / 'summary.md'}, {root / 'summary.csv'}, {root / 'summary.png'}")


if __name__ == "__main__":
    main()
