"""The shared lr-grid rule (runkit/lr_grid.py): the vision experiment maximises val top-1, the language one
minimises val loss; the same curve must give the same grid either way."""

import math

import pytest

from runkit.lr_grid import choose, interior_grid


def _scorer(curve, calls):
    def score(lrs):
        calls.append(list(lrs))
        return {lr: curve(lr) for lr in lrs}

    return score


@pytest.mark.parametrize("peak", [3e-5, 1e-3, 0.5])
def test_maximising_a_score_and_minimising_its_negation_grow_the_same_grid(peak):
    up, down = [], []
    accuracy = lambda lr: 50.0 - abs(math.log(lr / peak))  # noqa: E731
    high = interior_grid(_scorer(accuracy, up), [1e-4, 3e-4, 1e-3], higher_is_better=True)
    low = interior_grid(_scorer(lambda lr: -accuracy(lr), down), [1e-4, 3e-4, 1e-3], higher_is_better=False)
    assert up == down and high.lrs == low.lrs and high.best == low.best and high.at_edge == low.at_edge


def test_every_lr_failing_grows_the_grid_down_then_reports_it():
    calls = []
    grid = interior_grid(_scorer(lambda lr: None, calls), [1e-3, 3e-3, 1e-2], higher_is_better=False)
    assert grid.lrs == pytest.approx([1e-3 / 9, 1e-3 / 3, 1e-3, 3e-3, 1e-2]) and len(calls) == 3
    assert grid.every_lr_failed and grid.best is None and not grid.at_edge


def test_a_failed_neighbour_makes_the_surviving_edge_grow():
    calls = []
    grid = interior_grid(_scorer(lambda lr: None if lr > 2e-3 else 1.0 / lr, calls), [1e-3, 3e-3, 1e-2],
                         higher_is_better=True, max_extensions=1)  # fmt: skip
    assert calls[1] == pytest.approx([1e-3 / 3, 1e-3, 3e-3, 1e-2]) and grid.best == pytest.approx(1e-3 / 3)


def test_tune_and_the_experiments_choose_with_one_rule():
    """``tune.select`` over (lr, wd) is ``choose``: failed points never win, ties go to the smaller lr, then wd."""
    from visual_classification.tune import AllDiverged, select

    scores = {(0.1, 0.01): 50.0, (0.01, 0.001): 50.0, (0.01, 0.0001): 50.0, (1.0, 0.0): None}
    assert select(scores) == choose(scores, higher_is_better=True) == (0.01, 0.0001)
    assert choose({0.3: 2.0, 0.1: 2.0, 1.0: None}, higher_is_better=False) == 0.1
    with pytest.raises(AllDiverged, match="every grid point diverged"):
        select({(1.0, 0.0): None})
