"""The refocusing experiment's statistics: paired differences over seeds, their 95 % interval, the verdict words.

Every method's final runs use the same seeds on the same test images, so TOAST and a baseline are compared
seed by seed: the per-seed differences ``toast[s] - baseline[s]``, their mean and a Student t interval. A
"win" is claimed only where the whole interval lies above zero; a "loss" where it lies below; otherwise a tie.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Student t quantiles t(0.975; df) for df = 1..30 (scipy.stats.t.ppf, 4 decimals); beyond 30, the normal's 1.96
# is within 0.05 of them. Kept here so that the experiment needs no scipy.
T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.306, 2.2622, 2.2281, 2.201, 2.1788, 2.1604,
        2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.093, 2.086, 2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555,
        2.0518, 2.0484, 2.0452, 2.0423)  # fmt: skip
COLLAPSE_MARGIN = 2.0  # a final run within this many points of chance has collapsed ...
COLLAPSE_VAL_MARGIN = 10.0  # ... when its selected grid run stood at least this far above chance on val


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
        if self.low > 0:
            return "wins"
        if self.high < 0:
            return "loses"
        return "tie (interval includes 0)"

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


def paired_table(best: str, tests: Mapping[str, Mapping[int, float]], baselines: Sequence[str]) -> tuple[str, dict]:
    """Markdown rows ``best - baseline`` per baseline, and the ``Paired`` results by baseline name."""
    results = {b: paired_difference(tests[best], tests[b]) for b in baselines if b in tests}
    lines = [
        f"| {best} − baseline | n | mean difference [95 % t interval] (test top-1 points) | verdict |",
        "|---|---:|---|---|",
    ]
    lines += [f"| {best} − {b} | {p.n} | {p.cell()} | {p.verdict} |" for b, p in results.items()]
    return "\n".join(lines) + "\n", results
