"""The refocusing studies' statistics and grid growth, on hand-made numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.stats import best_on_val, collapsed, paired_bootstrap, paired_difference, t_quantile
from experiments.vision_refocus.report import budget_lines, paired_table
from runkit.lr_grid import interior_grid


def test_paired_interval_by_hand():
    # differences 1, 2, 3, 4, 5: mean 3, sd sqrt(2.5), t(0.975; 4) = 2.7764
    a = {s: 50.0 + s + 1 for s in range(5)}
    b = {s: 50.0 for s in range(5)}
    p = paired_difference(a, b)
    half = 2.7764 * math.sqrt(2.5) / math.sqrt(5)
    assert p.n == 5 and p.mean == pytest.approx(3.0)
    assert (p.low, p.high) == (pytest.approx(3 - half), pytest.approx(3 + half))
    assert p.verdict == "wins"
    assert paired_difference(b, a).verdict == "loses"


def test_paired_is_by_seed_not_by_position():
    # unpaired, these overlap widely; paired, b is always 1 above a
    a = {0: 40.0, 1: 60.0, 2: 50.0}
    b = {2: 51.0, 0: 41.0, 1: 61.0, 7: 99.0}  # seed 7 has no partner: left out
    p = paired_difference(a, b)
    assert p.n == 3 and p.mean == pytest.approx(-1.0) and p.low == pytest.approx(-1.0)
    assert p.verdict == "loses"


def test_tie_when_the_interval_includes_zero_and_no_interval_for_one_seed():
    assert paired_difference({0: 50.0, 1: 52.0, 2: 49.0}, {0: 51.0, 1: 50.0, 2: 49.5}).verdict == (
        "tie (interval includes 0)"
    )
    one = paired_difference({0: 60.0}, {0: 50.0})
    assert one.low is None and one.verdict == "no interval (n = 1)" and one.cell() == "+10.0"
    with pytest.raises(ValueError, match="no seed in common"):
        paired_difference({0: 1.0}, {1: 1.0})


def test_t_quantiles_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 4, 10, 30):
        assert t_quantile(df) == pytest.approx(float(stats.t.ppf(0.975, df)), abs=1e-4)
    assert t_quantile(100) == 1.96


def test_paired_table_and_best_on_val():
    best = best_on_val({"toast": 50.0, "toast-pretuned": 55.0, "lora": 60.0}, ["toast", "toast-pretuned", "x"])
    assert best == "toast-pretuned"
    tests = {"toast-pretuned": {0: 60.0, 1: 61.0}, "lora": {0: 50.0, 1: 52.0}, "bias": {0: 60.0, 1: 62.0}}
    text, results = paired_table(best, tests, ["lora", "bias", "missing"])
    assert list(results) == ["lora", "bias"]
    assert "| toast-pretuned − lora | 2 | +9.5 [" in text and "| wins |" in text
    assert "| toast-pretuned − bias | 2 | -0.5 [" in text and "tie (interval includes 0)" in text


def test_collapse_needs_a_good_val_and_a_chance_test():
    assert collapsed(20.8, 45.5, chance=20.0)
    assert not collapsed(20.8, 25.0, chance=20.0)  # never learned: not a collapse
    assert not collapsed(40.0, 45.5, chance=20.0)


def _fake(curve):
    calls = []

    def score(lrs):
        calls.append(list(lrs))
        return {lr: curve(lr) for lr in lrs}

    return score, calls


def test_grid_grows_past_the_top_edge_until_interior():
    score, calls = _fake(lambda lr: -abs(math.log(lr / 9e-3)))  # peak at 9e-3
    grid = interior_grid(score, [3e-3, 3e-4, 1e-3], higher_is_better=True)
    assert calls[0] == [3e-4, 1e-3, 3e-3] and len(calls) == 3
    assert grid.lrs == pytest.approx([3e-4, 1e-3, 3e-3, 9e-3, 2.7e-2])
    assert grid.best == pytest.approx(9e-3) and grid.extensions == 2 and not grid.at_edge


def test_grid_grows_down_and_stops_after_two_steps_flagging_the_edge():
    score, calls = _fake(lambda lr: -lr)  # always better lower
    grid = interior_grid(score, [1e-3, 3e-3, 1e-2], higher_is_better=True)
    assert len(calls) == 3 and grid.extensions == 2
    assert grid.lrs == pytest.approx([1e-3 / 9, 1e-3 / 3, 1e-3, 3e-3, 1e-2])
    assert grid.at_edge and grid.best == pytest.approx(1e-3 / 9)


def test_interior_optimum_needs_no_extension_and_diverged_never_wins():
    score, calls = _fake(lambda lr: None if lr > 5e-3 else -abs(lr - 1e-3))
    grid = interior_grid(score, [3e-4, 1e-3, 1e-2], higher_is_better=True)
    assert len(calls) == 1 and grid.best == 1e-3 and grid.extensions == 0 and not grid.at_edge


def test_summary_names_the_budget_the_verdicts_and_a_collapsed_run(tmp_path):
    from experiments.vision_refocus.report import write_summary

    selected = {n: {"lr": 1e-3, "val": v} for n, v in (("toast-pretuned", 55.0), ("toast", 40.0), ("lora", 45.0))}
    selected["bias-seq"] = {"lr": 3e-4, "val": 50.0}
    tests = {
        "toast-pretuned": {0: 50.0, 1: 52.0, 2: 55.0},
        "toast": {0: 60.0, 1: 60.0, 2: 60.0},  # higher on test, but not the best TOAST on val
        "lora": {0: 40.0, 1: 41.0, 2: 43.0},
        "bias-seq": {0: 50.0, 1: 21.0, 2: 56.0},  # seed 1 ended at chance after val 50: flagged
    }
    curves = {
        "toast-pretuned": {2: {0: 50.0, 1: 52.0}, 20: {0: 60.0, 1: 61.0}},
        "lora": {2: {0: 40.0, 1: 41.0}, 20: {0: 62.0, 1: 64.0}},
    }
    text = write_summary(tmp_path, selected, tests, curves, chance=20.0, epochs=2)
    assert "**2 target epochs**" in text and "## toast-pretuned (the best TOAST on val)" in text
    assert "| toast-pretuned − lora | 3 | +11.0 [" in text
    assert "At 2 target epochs toast-pretuned wins against lora; ties bias-seq." in text
    assert "**bias-seq seed 1 collapsed**: test top-1 21.0" in text and "| 42.3 ± 18.7 (n=3) * |" in text
    assert "| toast-pretuned − lora | +10.5 [" in text and "| 20 epochs |" in text
    for chart in ("summary.png", "paired.png", "budget.png"):
        assert (tmp_path / chart).stat().st_size > 0


def test_a_plateau_reaching_the_edge_does_not_grow_the_grid():
    score, calls = _fake(lambda lr: 30.0 if lr < 5e-3 else 25.0)  # the bottom two tie
    grid = interior_grid(score, [1e-3, 3e-3, 1e-2], higher_is_better=True)
    assert len(calls) == 1 and grid.best == 1e-3 and not grid.at_edge and grid.extensions == 0


def _within_seed_bootstrap(table: np.ndarray, rng: np.random.Generator, draws: int = 4000) -> float:
    """Half-width of the interval that draws items afresh within each seed (what the shared draw replaces)."""
    n_seeds, n_items = table.shape
    picks = rng.integers(0, n_items, size=(draws, n_seeds, n_items))
    means = np.take_along_axis(np.broadcast_to(table, picks.shape), picks, axis=2).mean(axis=(1, 2))
    low, high = np.quantile(means, [0.025, 0.975])
    return (high - low) / 2


def test_paired_bootstrap_draws_items_jointly_across_seeds():
    # items with a difficulty offset shared by every seed (sd 1) plus per-seed noise (sd 0.5): the mean over
    # seeds × items has variance 1/items + 0.25/(seeds × items), for a fresh draw of items and seeds
    rng = np.random.default_rng(0)
    n_seeds, n_items = 5, 300
    offsets = rng.normal(0.0, 1.0, n_items)
    table = 0.2 + offsets + rng.normal(0.0, 0.5, (n_seeds, n_items))
    analytic = 1.96 * math.sqrt(1.0 / n_items + 0.25 / (n_seeds * n_items))
    point, low, high = paired_bootstrap({s: list(table[s]) for s in range(n_seeds)})
    assert point == pytest.approx(table.mean()) and low < point < high
    assert 0.85 < (high - low) / 2 / analytic < 1.2
    assert _within_seed_bootstrap(table, rng) / analytic < 0.65  # independent draws: too narrow


def test_paired_bootstrap_needs_the_same_items_in_every_seed():
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap({0: [1.0, 2.0], 1: [1.0]})


def test_budget_curve_differences_pair_by_seed():
    # seed 1's run of lora is missing: the pairs are seeds 0 and 2, whatever order the runs were read in
    curves = {"toast": {2: {0: 50.0, 1: 70.0, 2: 60.0}}, "lora": {2: {2: 59.0, 0: 49.0}}}
    lines = budget_lines(curves)
    row = next(line for line in lines if line.startswith("| toast − lora |"))
    assert "+1.0 [+1.0, +1.0] wins" in row
