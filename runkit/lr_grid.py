"""Learning-rate grids whose optimum is interior: a grid whose best value sits at an edge grows past that edge.

One rule for both sub-projects' refocusing experiments (``experiments.vision_refocus`` scores val top-1, higher
is better; ``experiments.lm_refocus`` scores val answer loss, lower is better):

- a *failed* lr (``None`` score: the run diverged or died) never wins;
- the best lr is at an edge when it is the lowest (highest) lr tried and strictly better than its neighbour, or
  its neighbour failed; a plateau that reaches the edge (a tie) is not evidence that the optimum lies beyond;
- an edge optimum grows the grid one step (×3 or ÷3, the grids' own spacing) past that edge, at most
  ``max_extensions`` times, after which the report flags the edge;
- when every lr failed, the lrs were too high: the grid grows down (÷3 below the lowest).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

STEP = 3.0
MAX_EXTENSIONS = 2

Scores = Mapping[float, float | None]  # lr → val score; None: the run failed (diverged, dead)


def choose(scores: Mapping, *, higher_is_better: bool):
    """The best-scoring key that did not fail (ties go to the smaller lr); None when every one failed. A key is
    an lr, or a tuple such as ``(lr, wd)`` (``tune``'s grid), whose ties go to the smaller lr, then wd."""
    usable = {key: s for key, s in scores.items() if s is not None}
    if not usable:
        return None
    sign = 1.0 if higher_is_better else -1.0
    return max(usable, key=lambda k: (sign * usable[k], *(-x for x in (k if isinstance(k, tuple) else (k,)))))


def edge_optimum(scores: Scores, best: float | None, *, higher_is_better: bool) -> bool:
    """Whether ``best`` is the lowest or highest lr and strictly better than its one neighbour (or that failed)."""
    lrs = sorted(scores)
    if best is None or len(lrs) < 2 or best not in (lrs[0], lrs[-1]):
        return False
    neighbour = scores[lrs[1] if best == lrs[0] else lrs[-2]]
    if neighbour is None:
        return True
    return scores[best] > neighbour if higher_is_better else scores[best] < neighbour


def next_lr(scores: Scores, *, higher_is_better: bool, step: float = STEP) -> float | None:
    """The lr to try next: one step past a winning edge, one step below the lowest when every lr failed, else
    None (the optimum is interior)."""
    lrs = sorted(scores)
    best = choose(scores, higher_is_better=higher_is_better)
    if best is None:
        return lrs[0] / step
    if not edge_optimum(scores, best, higher_is_better=higher_is_better):
        return None
    return lrs[0] / step if best == lrs[0] else lrs[-1] * step


@dataclass(frozen=True)
class Grid:
    """The lrs tried, their val scores (``None``: failed), the choice (``None``: every lr failed), and the flags."""

    scores: dict[float, float | None]
    best: float | None
    extensions: int
    higher_is_better: bool

    @property
    def lrs(self) -> list[float]:
        return sorted(self.scores)

    @property
    def at_edge(self) -> bool:
        return edge_optimum(self.scores, self.best, higher_is_better=self.higher_is_better)

    @property
    def every_lr_failed(self) -> bool:
        return self.best is None


def interior_grid(
    score: Callable[[list[float]], Scores],
    lrs: Sequence[float],
    *,
    higher_is_better: bool,
    step: float = STEP,
    max_extensions: int = MAX_EXTENSIONS,
) -> Grid:
    """Scores ``lrs`` and grows the grid by :func:`next_lr` until the optimum is interior, at most
    ``max_extensions`` times. ``score(lrs)`` returns every given lr's val score; it is called with the grown
    grid each time, so it should skip runs already done."""
    grid = sorted(lrs)
    scores = dict(score(grid))
    extensions = 0
    while extensions < max_extensions:
        extra = next_lr(scores, higher_is_better=higher_is_better, step=step)
        if extra is None:
            break
        grid = sorted([*grid, extra])
        scores = dict(score(grid))
        extensions += 1
    return Grid(scores, choose(scores, higher_is_better=higher_is_better), extensions, higher_is_better)
