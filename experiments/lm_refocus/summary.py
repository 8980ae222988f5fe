"""The language refocusing study's tables, paired interval, figure and report, from :func:`.experiment.main_run`'s
result."""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path

from experiments.stats import BOOTSTRAP, mean_std, paired_bootstrap, verdict
from runkit.files import atomic_write_text, save_figure

from .evaluate import per_family
from .methods import METHODS


def paired_interval(a: dict, b: dict, key: str, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a - b`` over (seed, test item) pairs and its 95 % bootstrap interval (``paired_bootstrap``), in
    exact match (percentage points) or answer loss per token."""

    def item_value(item):
        return 100.0 * item["exact"] if key == "exact" else item["loss"] / max(1, item["tokens"])

    diffs = {s: [item_value(x) - item_value(y) for x, y in zip(a[s]["items"], b[s]["items"])] for s in sorted(a)}
    return paired_bootstrap(diffs, seed)


def missing_controls(setup) -> tuple[str, ...]:
    """The controls a win or loss needs that this run lacked."""
    missing = []
    if setup.grid_size == 1:
        missing.append("lr not chosen on val: GRID=1")
    if len(setup.seeds) < 2:
        missing.append("one seed")
    return tuple(missing)


def write_summary(out: Path, result: dict, setup) -> str:
    families = [*setup.families, "all"]
    rows = []  # (task, method, metric, mean, std, n)
    for method, by_seed in result["scores"].items():
        for metric in ("exact", "loss"):
            per_seed = [per_family(by_seed[s]["items"], metric) for s in sorted(by_seed)]
            for task in families:
                mean, std = mean_std([p[task] for p in per_seed])
                rows.append(
                    (task, method, "exact_match" if metric == "exact" else "answer_loss", mean, std, len(per_seed))
                )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["task", "method", "metric", "mean", "std", "n"])
    writer.writerows([(t, m, k, f"{mean:.4f}", f"{std:.4f}", n) for t, m, k, mean, std, n in rows])
    atomic_write_text(out / "summary.csv", buffer.getvalue())

    table = {(t, m, k): (mean, std) for t, m, k, mean, std, _ in rows}
    methods = list(result["scores"])
    n_test = len(result["splits"]["test"])
    lines = [
        f"# Language refocusing: SmolLM2-135M-Instruct, {len(setup.seeds)} seed(s) {setup.seeds}, "
        f"{max(setup.steps)} steps × batch {setup.batch}, {n_test} test items",
        "",
        "Greedy exact match (%, mean ± std over seeds) on unseen test items; "
        + (
            "lr per method chosen on val."
            if setup.grid_size > 1
            else "lr fixed per method (GRID=1), not chosen on val."
        ),
        "",
        "| method | lr | " + " | ".join(families) + " | answer loss (all) |",
        "|---|---:|" + "---:|" * (len(families) + 1),
    ]
    for m in methods:
        cells = [f"{table[(t, m, 'exact_match')][0]:.1f} ± {table[(t, m, 'exact_match')][1]:.1f}" for t in families]
        loss = table[("all", m, "answer_loss")]
        failed = " (every lr tried failed)" if result["chosen"][m].get("every_lr_failed") else ""
        failed += " *" if result.get("failed", {}).get(m) else ""
        lines.append(
            f"| {m} | {result['chosen'][m]['lr']:g}{failed} | "
            + " | ".join(cells)
            + f" | {loss[0]:.3f} ± {loss[1]:.3f} |"
        )
    lines += [
        f"- **{m} seed {s} failed**: {why}; it is in the mean above, marked *"
        for m, by_seed in result.get("failed", {}).items()
        for s, why in by_seed.items()
    ]
    pre = result["pretuned"]
    if pre and not pre["beats_fresh"]:
        lines += ["", f"The pre-tuned path does not beat the fresh one on the corpus' val split (LM loss "
                  f"{pre['curve'][str(pre['chosen_step'])]['lm']:.4f} against {pre['fresh']['lm']:.4f}): the "
                  "pre-tuned methods are shown, not compared."]  # fmt: skip
    best = result["best"]
    if best["toast"] and best["baseline"]:
        a, b = result["scores"][best["toast"]], result["scores"][best["baseline"]]
        em = paired_interval(a, b, "exact")
        loss = paired_interval(a, b, "loss")
        lines += [
            "",
            f"Best TOAST on val: **{best['toast']}**; best baseline on val: **{best['baseline']}** (lowest val answer loss).",
            f"Paired over {len(setup.seeds)} seed(s) × {n_test} test items, 95 % bootstrap interval ({BOOTSTRAP} resamples of the seeds and, "
            "one draw shared by every seed, of the test items):",
            f"- exact match, TOAST − baseline: {em[0]:+.1f} points [{em[1]:+.1f}, {em[2]:+.1f}] → {verdict(em[1], em[2], True, missing_controls(setup))}",
            f"- answer loss per token, TOAST − baseline: {loss[0]:+.3f} [{loss[1]:+.3f}, {loss[2]:+.3f}] → "
            f"{verdict(loss[1], loss[2], False, missing_controls(setup))}",
        ]
    if result["budget"]:
        lines += ["", "Budget curve (exact match on test, all families, mean ± std over seeds):", "",
                  "| method | " + " | ".join(f"{s} steps" for s in setup.steps) + " |",
                  "|---|" + "---:|" * len(setup.steps)]  # fmt: skip
        for m, by_steps in result["budget"].items():
            cells = []
            for s in setup.steps:
                mean, std = mean_std([per_family(by_steps[s][seed]["items"], "exact")["all"] for seed in setup.seeds])
                cells.append(f"{mean:.1f} ± {std:.1f}")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    if result.get("pretune_curve"):
        lines += pretune_curve_lines(result["pretune_curve"], setup)
        _curve_figure(out / "pretune_curve.png", result["pretune_curve"])
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "summary.md", text)
    _figure(out / "summary.png", result, setup, table, methods)
    return text


def pretune_curve_lines(curve: dict, setup) -> list[str]:
    """The pre-tuning curve: each method's test exact match at each pre-tuning budget, and ``toast-pre`` minus
    ``lora-corpus`` at each, paired over seeds × items (``paired_interval``)."""
    points = sorted(curve.values(), key=lambda p: p["tokens"])
    names = list(points[0]["scores"])
    lines = ["", "Pre-tuning curve (test exact match, all families, mean ± std over seeds; 0 tokens: `toast-fresh` "
             "and `lora-r4`; each budget with its own pre-tuning, grids and seeds):", "",
             "| method | " + " | ".join(f"{p['tokens']:,} tokens" for p in points) + " |",
             "|---|" + "---:|" * len(points)]  # fmt: skip
    for n in names:
        cells = [mean_std([per_family(s["items"], "exact")["all"] for s in p["scores"][n].values()]) for p in points]
        lines.append(f"| {n} | " + " | ".join(f"{m:.1f} ± {sd:.1f}" for m, sd in cells) + " |")
    if {"toast-pre", "lora-corpus"} <= set(names):
        cells = []
        for p in points:
            a, b = p["scores"]["toast-pre"], p["scores"]["lora-corpus"]
            mean, low, high = paired_interval(a, b, "exact")
            cells.append(f"{mean:+.1f} [{low:+.1f}, {high:+.1f}] {verdict(low, high, True, missing_controls(setup))}")
        lines += ["", "| toast-pre − lora-corpus (exact match, 95 % bootstrap) | "
                  + " | ".join(f"{p['tokens']:,} tokens" for p in points) + " |", "|---|" + "---|" * len(points),
                  "| exact match | " + " | ".join(cells) + " |"]  # fmt: skip
    return lines


def _figure(path: Path, result: dict, setup, table: dict, methods: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    means = [table[("all", m, "exact_match")][0] for m in methods]
    stds = [table[("all", m, "exact_match")][1] for m in methods]
    left.bar(
        range(len(methods)),
        means,
        yerr=stds,
        color=["tab:red" if METHODS[m].is_toast else "tab:blue" for m in methods],
    )
    left.set_xticks(range(len(methods)), methods, rotation=40, ha="right")
    left.set_ylabel("test exact match (%), all families")
    left.set_title(f"{max(setup.steps)} steps, {len(setup.seeds)} seed(s)")
    for m, by_steps in result["budget"].items():
        ys = [statistics.fmean(per_family(by_steps[s][seed]["items"], "exact")["all"] for seed in setup.seeds)
              for s in setup.steps]  # fmt: skip
        right.plot(setup.steps, ys, marker="o", label=m)
    right.set_xlabel("training steps")
    right.set_ylabel("test exact match (%)")
    right.set_title("budget curve (best TOAST, best baseline)")
    if result["budget"]:
        right.legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def _curve_figure(path: Path, curve: dict) -> None:
    """Test exact match (mean ± std over seeds) against pre-tuning tokens, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted(curve.values(), key=lambda p: p["tokens"])
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name in points[0]["scores"]:
        stats = [
            mean_std([per_family(s["items"], "exact")["all"] for s in p["scores"][name].values()]) for p in points
        ]
        ax.errorbar([p["tokens"] for p in points], [m for m, _ in stats], yerr=[sd for _, sd in stats], marker="o",
                    capsize=3, label=name)  # fmt: skip
    nonzero = [p["tokens"] for p in points if p["tokens"]]
    ax.set_xscale("symlog", linthresh=min(nonzero, default=1))
    ax.set_xlabel("pre-tuning tokens (0: none)")
    ax.set_ylabel("test exact match (%)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def pretune_lines(pre: dict) -> list[str]:
    """The pre-tuning section: the lr grid, the chosen run's curve, and the bare model, the fresh and the
    pre-tuned path on the corpus' val split."""
    chosen = pre["curve"][str(pre["chosen_step"])]
    how = "chosen on val" if pre["lr_chosen_on_val"] else "fixed (one lr given: not chosen on val)"
    edge = " (still at an edge after the allowed extensions)" if pre["at_edge"] else ""
    grid = ", ".join(
        f"{lr}: " + (f"failed ({v['failed']})" if v["failed"] else f"{v['lm']:.4f}") + f" (step {v['step']})"
        for lr, v in pre["lrs"].items()
    )
    lines = ["", "## Pre-tuning (val split of the corpus)", "",
             f"LM loss on the corpus' val split: bare model {pre['bare_lm']:.4f}; fresh path {pre['fresh']['lm']:.4f}; "
             f"pre-tuned path {chosen['lm']:.4f} → the pre-tuned path "
             + ("beats" if pre["beats_fresh"] else "**does not beat**") + " the fresh one.", "",
             f"Pre-tuning lr {pre['lr']:g}, {how}{edge}; checkpoint chosen by the LM term alone. Grid (best "
             f"checkpoint's val LM loss): {grid}.",
             "", "| step | pass-2 LM loss | recon loss |", "|---:|---:|---:|"]  # fmt: skip
    for step, v in sorted(pre["curve"].items(), key=lambda kv: int(kv[0])):
        lines.append(f"| {step} | {v['lm']:.4f} | {v['recon']:.4f} |")
    lines += ["", f"Chosen: step {pre['chosen_step']} ({pre['tokens']:,} tokens), `{pre['weights']}`."]
    return lines


def lite_lines(method: str, rows: list[dict]) -> list[str]:
    """Per layer, the frozen pre-tuned A_i, B_i against the rank-r updates the tuning learned on them."""
    lines = ["", f"## {method}: the pre-tuned weights against the learned low-rank updates (first seed)", "",
             "Frobenius norms; an update far smaller than its weight leaves the pre-tuned path in place.", "",
             "| layer | ‖A_i‖ | ‖scale·b·a‖ on A_i | ‖B_i‖ | ‖scale·b·a‖ on B_i | update / B_i |",
             "|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        ratio = r["B_update"] / r["B"] if r["B"] else float("nan")
        lines.append(
            f"| {r['layer']} | {r['A']:.3f} | {r['A_update']:.4f} | {r['B']:.3f} | {r['B_update']:.4f} | {ratio:.3f} |"
        )
    return lines


def write_report(out: Path, result: dict, setup, summary: str, wall: float) -> None:
    lines = ["# Language refocusing experiment: report", "", summary, "## Chosen learning rates (val answer loss)", ""]
    for m, c in result["chosen"].items():
        grid = ", ".join(f"{lr}: {loss:.3f}" for lr, loss in c["grid"].items())
        edge = " (still at an edge after the allowed extensions)" if c["at_edge"] else ""
        edge += " (GRID=1: the grid's middle lr, not chosen on val)" if c.get("fixed") else ""
        if c.get("failed"):
            edge += "; failed runs, not eligible: " + ", ".join(f"{lr} {why}" for lr, why in c["failed"].items())
        if c.get("every_lr_failed"):
            edge += " — **every lr tried failed**: its scores are those of a failed run"
        lines.append(f"- {m}: lr {c['lr']:g}{edge}; grid {grid}")
    pre = result["pretuned"]
    if pre:
        lines += pretune_lines(pre)
    for m, rows in result.get("lite", {}).items():
        lines += lite_lines(m, rows)
    prov = result["provenance"]
    lines += ["", "## Corpus", "", "```", *(f"{k}: {v}" for k, v in prov.items()), "```"]
    lines += ["", f"## Time per stage (this invocation, {setup.jobs} job(s) at a time: a stage's runs summed, so"
              " stages that ran side by side add up to more than the wall time; a resumed stage counts only what"
              " it redid)", ""]  # fmt: skip
    lines += [f"- {k}: {v / 60:.1f} min" for k, v in setup.times.items()]
    lines += [f"- wall time: {wall / 60:.1f} min"]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
