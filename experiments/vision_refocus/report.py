"""The vision refocusing study's written results: ``summary.md`` (table, paired intervals, budget curve, charts)
and ``report.md`` (input size, every lr grid with its val scores and flags, time per stage)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from experiments.stats import best_on_val, collapsed, mean_std, paired_difference
from runkit.files import atomic_write_text

from .methods import METHODS
from .plots import plot_budget, plot_methods, plot_paired

PHRASES = {"wins": "wins against", "loses": "loses against", "tie": "ties", "no interval": "has no interval against"}


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f} (n=1)"
    mean, std = mean_std(values)
    return f"{mean:.1f} ± {std:.1f} (n={len(values)})"


def setting(name: str, chosen: Mapping) -> str:
    """The point a method's grid chose: lr and head multiplier, or the L-BFGS probe's L2 strength."""
    if METHODS[name].axis == "wd":
        return f"L2 {chosen['wd']:g} (L-BFGS)"
    mult = chosen.get("head", 1.0) * float(METHODS[name].opts.get("SOLVER.HEAD_LR_MULT", 1.0))
    return f"lr {chosen['lr']:g}, head ×{mult:g}"


def paired_table(best: str, tests: Mapping[str, Mapping[int, float]], baselines: Sequence[str]) -> tuple[str, dict]:
    """Markdown rows ``best - baseline`` per baseline, and the ``Paired`` results by baseline name."""
    results = {b: paired_difference(tests[best], tests[b]) for b in baselines if b in tests}
    lines = [
        f"| {best} − baseline | n | mean difference [95 % t interval] (test top-1 points) | verdict |",
        "|---|---:|---|---|",
    ]
    lines += [f"| {best} − {b} | {p.n} | {p.cell()} | {p.verdict} |" for b, p in results.items()]
    return "\n".join(lines) + "\n", results


def collapses(selected: Mapping[str, dict], tests: Mapping[str, Mapping[int, float]], chance: float) -> list[str]:
    """One line per final run that ended near chance although its grid run stood well above it on val."""
    lines = []
    for name, by_seed in tests.items():
        val = selected[name].get("val")
        for seed, test in by_seed.items():
            if collapsed(test, val, chance):
                lines.append(
                    f"- **{name} seed {seed} collapsed**: test top-1 {test:.1f} (chance {chance:.0f}) after val "
                    f"{val:.1f} on its grid; it is in the mean above, marked *"
                )
    return lines


def write_summary(
    out: Path,
    selected: Mapping[str, dict],
    tests: Mapping[str, Mapping[int, float]],
    curves: Mapping[str, Mapping[int, Mapping[int, float]]],
    chance: float,
    epochs: int,
    pretuning: Mapping[str, Mapping] | None = None,
) -> str:
    """``out/summary.md``, ``summary.png``, ``paired.png``, (with a budget curve) ``budget.png`` and (with a
    pre-tuning curve) ``pretune_curve.png``; the markdown."""
    names = [n for n in tests if tests[n]]
    flagged = {n for n in names for s, t in tests[n].items() if collapsed(t, selected[n].get("val"), chance)}
    lines = [
        f"Target test top-1 (%) at **{epochs} target epochs** (train800val200 → test), chance {chance:.0f} %; "
        "mean ± std over seeds, each method's grid point (lr and head factor; the probe's L2) chosen on val200.",
        "",
        "| method | selected | val top-1 there | test top-1 | per seed |",
        "|---|---:|---:|---|---|",
    ]
    for name in names:
        val = selected[name].get("val")
        seeds = ", ".join(f"{s}: {v:.1f}" for s, v in sorted(tests[name].items()))
        mark = " *" if name in flagged else ""
        val_cell = "-" if val is None else f"{val:.1f}"
        lines.append(
            f"| {name} | {setting(name, selected[name])} | {val_cell} | {_mean_std(list(tests[name].values()))}{mark} | {seeds} |"
        )
    flags = collapses(selected, tests, chance)
    lines += ["", *flags] if flags else []
    plot_methods({n: tests[n] for n in names}, chance, out / "summary.png")
    toasts = [n for n in names if METHODS[n].is_toast]
    baselines = [n for n in names if not METHODS[n].is_toast]
    val = {n: selected[n]["val"] for n in names if selected[n].get("val") is not None}
    if toasts and baselines:
        best = best_on_val(val, toasts) if any(n in val for n in toasts) else toasts[0]
        table, results = paired_table(best, tests, baselines)
        by_verdict: dict[str, list[str]] = {}
        for baseline, paired in results.items():
            by_verdict.setdefault(paired.verdict.split(" (")[0], []).append(baseline)
        lines += [
            "",
            f"## {best} (the best TOAST on val) against each baseline, paired by seed, at {epochs} target epochs",
            "",
            "A win is claimed only where the 95 % interval of the paired difference lies above zero.",
            "",
            table,
            f"At {epochs} target epochs {best} "
            + "; ".join(f"{PHRASES[verdict]} {', '.join(names)}" for verdict, names in by_verdict.items())
            + ".",
        ]
        plot_paired(best, results, out / "paired.png")
    if {"toast", "prompt"} <= set(names):
        p = paired_difference(tests["toast"], tests["prompt"])
        lines += ["", "The paper's ablation, TOAST without pre-tuning against VPT (toast − prompt, paired by seed): "
                  f"{p.cell()} → {p.verdict}."]  # fmt: skip
    if curves:
        lines += ["", *budget_lines(curves)]
        plot_budget(curves, out / "budget.png")
    if pretuning:
        lines += ["", *pretune_curve_lines(pretuning)]
        by_method: dict[str, dict[int, Mapping[int, float]]] = {}
        for point in pretuning.values():
            for name, scores in point["scores"].items():
                by_method.setdefault(name, {})[point["epochs"]] = scores
        plot_budget(by_method, out / "pretune_curve.png", xlabel="source (pre-tuning) epochs; 0: none")
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "summary.md", text)
    return text


def _paired_cell(a: Mapping[int, float], b: Mapping[int, float]) -> str:
    """``a − b`` paired by seed, with its verdict, for a table cell ("-" where no seed is in both)."""
    if not set(a) & set(b):
        return "-"
    p = paired_difference(a, b)
    return f"{p.cell()} {p.verdict}"


def budget_lines(curves: Mapping[str, Mapping[int, Mapping[int, float]]]) -> list[str]:
    """The budget table (method × target epochs) and, per budget, the first method minus each other one, paired
    by seed (``curves[method][epochs][seed]``)."""
    budgets = sorted({e for c in curves.values() for e in c})
    names = list(curves)
    lines = [
        "## Budget curve (test top-1, the lr chosen at the main budget, the first seeds)",
        "",
        "| method | " + " | ".join(f"{e} epochs" for e in budgets) + " |",
        "|---|" + "---|" * len(budgets),
    ]
    lines += [
        f"| {n} | " + " | ".join(_mean_std(list(curves[n].get(e, {}).values())) for e in budgets) + " |" for n in names
    ]
    first, others = names[0], names[1:]
    if others:
        lines += [
            "",
            f"| {first} − … (paired by seed, 95 % t interval) | " + " | ".join(f"{e} epochs" for e in budgets) + " |",
        ]
        lines.append("|---|" + "---|" * len(budgets))
        for other in others:
            cells = [_paired_cell(curves[first].get(e, {}), curves[other].get(e, {})) for e in budgets]
            lines.append(f"| {first} − {other} | " + " | ".join(cells) + " |")
    return lines


def pretune_curve_lines(pretuning: Mapping[str, Mapping]) -> list[str]:
    """The pre-tuning curve: each method's test top-1 at each source length, and pre-tuned TOAST minus each
    baseline that sees the same source, paired by seed, at each length."""
    points = sorted(pretuning.values(), key=lambda p: p["epochs"])
    names = list(points[0]["scores"])
    lines = [
        "## Pre-tuning curve (test top-1 against source epochs; 0: no source training, i.e. the fresh `toast` and "
        "the plain baselines; each length with its own grids on val)",
        "",
        "| method | " + " | ".join(f"{p['epochs']} epochs" for p in points) + " |",
        "|---|" + "---|" * len(points),
    ]
    lines += [f"| {n} | " + " | ".join(_mean_std(list(p["scores"][n].values())) for p in points) + " |" for n in names]
    if "toast-pretuned" in names and len(names) > 1:
        lines += ["", "| toast-pretuned − … (paired by seed, 95 % t interval) | "
                  + " | ".join(f"{p['epochs']} epochs" for p in points) + " |", "|---|" + "---|" * len(points)]  # fmt: skip
        for other in (n for n in names if n != "toast-pretuned"):
            cells = [_paired_cell(p["scores"]["toast-pretuned"], p["scores"][other]) for p in points]
            lines.append(f"| toast-pretuned − {other} | " + " | ".join(cells) + " |")
    return lines


def write_report(
    out: Path,
    args,
    size: int,
    size_scores: Mapping[int, float],
    selected: Mapping[str, dict],
    tests: Mapping[str, Mapping[int, float]],
    chance: float,
    seconds: Mapping[str, float],
) -> str:
    """``out/report.md``: data, input size, each method's lr grid with val scores and flags, time per stage."""
    lines = [
        f"Domain {args.domain}: source classes {args.source_classes} ({args.source_train} train / "
        f"{args.source_val} val scenes), target classes {args.target_classes} ({args.target_train} / "
        f"{args.target_val} / {args.test} test scenes), seeds {args.seeds}; no image (labelled or fragment) "
        "in two splits.",
        "",
        f"Source training ({args.pretune_epochs} epochs on the source scenes: TOAST's pre-tuning, and each `-seq` "
        "method's own source run) "
        + (
            "is done once per target seed, with that seed; the grids use the first seed's. The paired intervals "
            "cover the source runs' variance."
            if args.source_seeds == "per-seed"
            else "is done once (seed 0) and shared by every seed and grid point: the paired intervals of the "
            "pre-tuned and `-seq` methods cover the target seeds' variance only, not the source run's "
            "(`--source-seeds per-seed` covers it)."
        ),
        "",
        "Head learning rate: "
        + (
            f"each method's head multiplier scaled by each of {list(args.head_factors)}, each factor with its own "
            "grid on val; the best factor and lr on val are kept, for every method alike."
            if len(args.head_factors) > 1
            else "each method's own head multiplier (fixed, not chosen on val; `--head-factors` chooses it on val)."
        )
        + " The linear probe is solved by L-BFGS on cached features; its grid is its L2 strength.",
        "",
        "Input size, linear probe val top-1 (train800 → val200, chance "
        f"{chance:.0f} %): " + ", ".join(f"{s} px {v:.1f}" for s, v in size_scores.items()) + f" → **{size} px**.",
        "",
        "| method | grid (lr; linear: L2): val top-1 at the last epoch | grown | selected | flag |",
        "|---|---|---:|---:|---|",
    ]
    for name, result in selected.items():
        if result.get("grid") is None:
            lines.append(f"| {name} | fixed (no grid) | - | {setting(name, result)} | |")
            continue
        heads = result.get("heads") or {result.get("head", 1.0): result["grid"]}
        for head, grid in heads.items():
            label = name if len(heads) == 1 else f"{name} (head factor {head:g})"
            cells = ", ".join(
                f"{lr:g}: {'diverged' if grid.scores[lr] is None else f'{grid.scores[lr]:.1f}'}" for lr in grid.lrs
            )
            flag = "**optimum still at an edge**" if grid.at_edge else ""
            chosen = setting(name, result) if head == result.get("head", 1.0) else "-"
            lines.append(f"| {label} | {cells} | {grid.extensions} | {chosen} | {flag} |")
    lines += ["", *collapses(selected, tests, chance)]
    lines += ["", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {stage} | {value:.0f} |" for stage, value in seconds.items()]
    lines.append(f"| **all, summed** | {sum(seconds.values()):.0f} |")
    lines += ["", f"Seconds are each stage's runs summed over every invocation; with {args.jobs} run(s) at a "
              "time they overlap, so the wall time is less (the script prints each invocation's)."]  # fmt: skip
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "report.md", text)
    return text
