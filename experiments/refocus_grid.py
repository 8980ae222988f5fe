"""Learning-rate grids whose optimum is interior: a grid whose best value sits at an edge grows past that edge.

Used by :mod:`experiments.refocus` on val only (train800 → val200); the test split is never read here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

STEP = 3.0  # one step beyond an edge: the edge × 3 (top) or ÷ 3 (bottom), the grids' own spacing
MAX_EXTENSIONS = 2


@dataclass(frozen=True)
class Grid:
    """The lrs tried (ascending), their val scores (``None``: diverged), the choice, and whether it is an edge."""

    scores: dict[float, float | None]
    best: float
    extensions: int

    @property
    def lrs(self) -> list[float]:
        return sorted(self.scores)

    @property
    def at_edge(self) -> bool:
        return edge_optimum(self.scores, self.best)


def edge_optimum(scores: dict[float, float | None], best: float) -> bool:
    """Whether ``best`` is the lowest or highest lr and strictly better than its one neighbour (a plateau that
    reaches the edge, a tie with the neighbour, is not evidence that the optimum lies beyond it)."""
    lrs = sorted(scores)
    if len(lrs) < 2 or best not in (lrs[0], lrs[-1]):
        return False
    neighbour = scores[lrs[1] if best == lrs[0] else lrs[-2]]
    return neighbour is None or scores[best] > neighbour


def choose(scores: dict[float, float | None]) -> float:
    """The best-scoring lr; ties go to the smaller lr (as ``tune.select``); diverged runs never win."""
    scored = {lr: s for lr, s in scores.items() if s is not None}
    if not scored:
        raise ValueError(f"every lr diverged: {sorted(scores)}")
    return max(scored, key=lambda lr: (scored[lr], -lr))


def interior_grid(
    score: Callable[[list[float]], dict[float, float | None]],
    lrs: Sequence[float],
    step: float = STEP,
    max_extensions: int = MAX_EXTENSIONS,
) -> Grid:
    """Scores ``lrs``; while the best sits at the lowest (highest) lr, strictly above its neighbour, adds
    lowest ÷ step (highest × step) and scores again, at most ``max_extensions`` times. ``score(lrs)`` returns
    every given lr's val score (it may skip runs already done: it is called with the grown grid each time)."""
    grid = sorted(lrs)
    scores = dict(score(grid))
    for extension in range(max_extensions + 1):
        best = choose(scores)
        if not edge_optimum(scores, best) or extension == max_extensions:
            return Grid(scores, best, extension)
        grid = [grid[0] / step, *grid] if best == grid[0] else [*grid, grid[-1] * step]
        scores = dict(score(grid))
    raise AssertionError("unreachable")
