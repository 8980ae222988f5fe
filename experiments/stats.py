"""The refocusing studies' statistics: paired differences between two methods, their 95 % intervals, the verdicts.

Every method's final runs use the same seeds on the same test items, so TOAST and a baseline are compared seed by
seed. The vision study pairs per-seed test top-1 (``paired_difference``: mean and Student t interval over seeds);
the language study pairs per-item scores within each seed (``paired_bootstrap``: a percentile bootstrap that
resamples seeds and, with one draw shared by every seed, items, since the same test items recur in every seed). Either way a win is claimed only where the whole interval lies above
zero, a loss where it lies below; otherwise a tie.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

# Student t quantiles t(0.975; df) for df = 1..30 (scipy.stats.t.ppf, 4 decimals); beyond 30, the normal's 1.96
# is within 0.05 of them. Kept here so that the experiment needs no scipy.
T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.306, 2.2622, 2.2281, 2.201, 2.1788, 2.1604,
        2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.093, 2.086, 2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555,
        2.0518, 2.0484, 2.0452, 2.0423)  # fmt: skip
COLLAPSE_MARGIN = 2.0  # a final run within this many points of chance has collapsed ...
COLLAPSE_VAL_MARGIN = 10.0  # ... when its selected grid run stood at least this far above chance on val
BOOTSTRAP = 10_000  # resamples of the paired bootstrap


def side_of_zero(low: float, high: float) -> Literal["above", "below", "includes"]:
    """Where a 95 % interval lies with respect to zero: the one rule behind every verdict."""
    if low > 0:
        return "above"
    if high < 0:
        return "below"
    return "includes"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


@dataclass(frozen=True)
class Paired:
    """``a - b`` over the seeds both have: mean and 95 % t interval (``None`` with fewer than 2 seeds)."""

    n: int
    mean: float
    low: float | None
    high: float | None

    @property
    def verdict(self) -> str:
        if self.low is None or self.high is None:
            return f"no interval (n = {self.n})"
        return {"above": "wins", "below": "loses", "includes": "tie (interval includes 0)"}[
            side_of_zero(self.low, self.high)
        ]

    def cell(self) -> str:
        if self.low is None:
            return f"{self.mean:+.1f}"
        return f"{self.mean:+.1f} [{self.low:+.1f}, {self.high:+.1f}]"


def t_quantile(df: int) -> float:
    """t(0.975; df), the two-sided 95 % quantile."""
    if df < 1:
        raise ValueError(f"a t interval needs at least 1 degree of freedom, got {df}")
    return T975[df - 1] if df <= len(T975) else 1.96


def paired_difference(a: Mapping[int, float], b: Mapping[int, float]) -> Paired:
    """``a - b`` paired by seed (the keys); seeds only one side has are left out."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(f"no seed in common: {sorted(a)} against {sorted(b)}")
    diffs = [a[s] - b[s] for s in seeds]
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return Paired(len(diffs), mean, None, None)
    half = t_quantile(len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return Paired(len(diffs), mean, mean - half, mean + half)


def collapsed(test_top1: float, val_top1: float | None, chance: float) -> bool:
    """A final run that ended near chance although its grid run was well above it on val."""
    return val_top1 is not None and test_top1 <= chance + COLLAPSE_MARGIN and val_top1 >= chance + COLLAPSE_VAL_MARGIN


def best_on_val(val: Mapping[str, float], candidates: Sequence[str]) -> str:
    """The candidate with the highest selected-lr val top-1 (ties: the first in ``candidates``)."""
    present = [c for c in candidates if c in val]
    if not present:
        raise ValueError(f"none of {list(candidates)} has a val score (have {sorted(val)})")
    return max(present, key=lambda c: (val[c], -present.index(c)))


def paired_bootstrap(diffs: Mapping[int, Sequence[float]], seed: int = 0) -> tuple[float, float, float]:
    """Mean of the paired differences ``{seed: [per-item difference]}`` over every (seed, item) and its 95 %
    percentile bootstrap interval: ``(mean, low, high)``.

    Every seed scores the same items in the same order, so an item's difficulty is shared by all seeds: each
    resample draws the seeds and one set of item indices applied to every drawn seed (a two-way bootstrap).
    Drawing items afresh within each seed would treat that shared difficulty as independent noise and give an
    interval too narrow by about sqrt(number of seeds) when items differ."""
    seeds = sorted(diffs)
    if not seeds:
        raise ValueError("no seed to resample")
    lengths = {len(diffs[s]) for s in seeds}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(f"every seed must score the same items: item counts {sorted(lengths)}")
    table = np.asarray([diffs[s] for s in seeds], dtype=np.float64)  # (seeds, items)
    n_seeds, n_items = table.shape
    rng = np.random.default_rng(seed)
    means = np.empty(BOOTSTRAP)
    for start in range(0, BOOTSTRAP, 1000):
        count = min(1000, BOOTSTRAP - start)
        seed_counts = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=count)  # (count, seeds)
        item_counts = rng.multinomial(n_items, np.full(n_items, 1 / n_items), size=count)  # (count, items)
        means[start : start + count] = ((seed_counts @ table) * item_counts).sum(1) / (n_seeds * n_items)
    means.sort()
    return float(table.mean()), float(means[int(0.025 * BOOTSTRAP)]), float(means[int(0.975 * BOOTSTRAP) - 1])


def verdict(low: float, high: float, higher_is_better: bool, missing: tuple[str, ...] = ()) -> str:
    """TOAST against a baseline by the interval of ``toast - baseline``: win, loss or tie; ``missing`` names the
    controls the run lacked (an lr not chosen on val, a single seed), and then the sign is stated without a
    ranking."""
    side = side_of_zero(low, high)
    if side == "includes":
        return "tie (the interval includes 0)"
    ahead = (side == "above") == higher_is_better
    if missing:
        return f"{'TOAST' if ahead else 'the baseline'} ahead in this run, not a ranking ({', '.join(missing)})"
    return "TOAST wins" if ahead else "TOAST loses"
