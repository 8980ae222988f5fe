"""The original VTAB protocol for one task and method: an lr × wd grid, then seeded final runs.

    python -m visual_classification.tune --config-file configs/vtab/dtd.yaml OUTPUT_DIR output/vtab \\
        DATA.DATAPATH /data/vtab-1k MODEL.TRANSFER_TYPE toast

1. Tuning: every (lr, wd) of the method's grid (its registration's ``lr_grid``: the original's grids; lr scaled
   by batch/256) trains on
   train800 and is scored on val200 at its last epoch; the best pair wins (ties: the smaller lr).
2. Final runs: the best pair on train800val200 with each seed, scored on test.

Runs live in ``OUTPUT_DIR/val/<task>/<method>/lr*_wd*`` and ``OUTPUT_DIR/final/<task>/<method>/seed*``;
finished runs are skipped, so the command resumes, and several copies of it can share the work (a run
folder's lock keeps two copies out of one run: each skips what another holds and collects it at the end).
With the method's cache on (``DATA.CACHE_FEATURES``, ``MODEL.TOAST.CACHE_FIRST_PASS``) the frozen backbone's output is
computed once per split and reused by every run of the grid and every seed (see ``engine.feature_cache``).
FGVC and ImageFolder tasks use train → val for tuning and train → val/test for the final runs.
A grid point (or a seed) whose loss goes non-finite is scored as failed, logged, and skipped by the selection
(its folder's ``diverged.json`` answers at once on a re-run); only a grid where every point diverged stops.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

from yacs.config import CfgNode

from runkit.cli import UserError, user_errors
from runkit.lr_grid import choose

from .config import load_config
from .models.transfer import TRANSFER_METHODS
from .train import resolve_optimizer, train

logger = logging.getLogger("visual_classification.tune")

WD_GRID = [0.01, 0.001, 0.0001, 0.0]
SEEDS = [42, 44, 82, 100, 800]


def _splits(cfg: CfgNode) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
    """(tuning splits, final splits) as (train, val, test), as the task's layout defines them."""
    from .data.datasets import task_layout

    layout = task_layout(cfg)
    return layout.tuning_splits, layout.final_splits


def _override(cfg: CfgNode, **entries) -> CfgNode:
    out = cfg.clone()
    out.defrost()
    for key, value in entries.items():
        node = out
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    out.freeze()
    return out


def _fmt(x: float) -> str:
    return f"{x:g}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def select(results: dict[tuple[float, float], float | None]) -> tuple[float, float]:
    """The (lr, wd) with the highest score; ties go to the smaller lr, then the smaller wd; ``None`` (diverged)
    never wins."""
    best = choose(results, higher_is_better=True)  # the refocusing experiments' rule (runkit.lr_grid)
    if best is None:
        raise AllDiverged(f"every grid point diverged ({', '.join(f'lr {lr:g} wd {wd:g}' for lr, wd in results)})")
    return best


def run_all(runs: list[CfgNode]) -> list[dict]:
    """Trains every run; a run another copy of ``tune`` is doing (its folder's lock is held) is left for
    last and then waited for, so that copies share the work instead of queueing behind each other."""
    from .engine import run_files as rf

    results: dict[int, dict] = {}
    held = []
    for i, run in enumerate(runs):
        try:
            results[i] = train_or_fail(run)
        except rf.RunLocked:
            logger.info("%s is being trained by another process; coming back to it", run.OUTPUT_DIR)
            held.append(i)
    for i in held:
        rf.wait_for_lock(Path(runs[i].OUTPUT_DIR))
        results[i] = train_or_fail(runs[i])  # finished by the other copy (or resumed, if it died)
    return [results[i] for i in range(len(runs))]


def train_or_fail(run: CfgNode) -> dict:
    """The run's results, or ``{"diverged": why}`` when its loss went non-finite (now, or in an earlier attempt:
    the run folder's ``diverged.json`` answers at once): one diverging grid point must not stop the grid."""
    try:
        return train(run)
    except FloatingPointError as err:
        logger.warning("%s diverged: %s", run.OUTPUT_DIR, err)
        return {"diverged": str(err)}


def _score(result: dict) -> float | None:
    """A run's tuning score; ``None`` for a diverged run (never selected)."""
    return None if "diverged" in result else result["final_val_top1"]


class AllDiverged(RuntimeError):
    """Every point of the grid diverged: there is nothing to select."""


def tune(cfg: CfgNode, lrs: list[float] | None, wds: list[float], seeds: list[int]) -> dict:
    """Grid, selection and final runs; with ``lrs=None`` the config's own lr and wd are used, untuned.

    A probe that chooses its own L2 strength on val (``SOLVER.PROBE_DECAYS``, the own-data default for
    ``linear``) has nothing left for a grid (L-BFGS takes no learning rate): it goes straight to the final runs.
    """
    from .data.datasets import task_folder
    from .engine import run_files as rf

    cfg, note = resolve_optimizer(cfg)
    if lrs is not None and cfg.SOLVER.OPTIMIZER == "lbfgs" and cfg.SOLVER.PROBE_DECAYS:
        print(f"[tune] {note or 'SOLVER.PROBE_DECAYS chooses the L2 strength on val in each run'}: no lr x wd grid")
        lrs = None
    root = Path(cfg.OUTPUT_DIR)
    task = cfg.DATA.NAME or task_folder(cfg).name
    method = TRANSFER_METHODS.canonical(cfg.MODEL.TRANSFER_TYPE)
    (tr, va, te), (ftr, fva, fte) = _splits(cfg)
    scale = cfg.DATA.BATCH_SIZE / 256
    scores: dict[tuple[float, float], float] = {}
    if lrs is None:  # fixed: the config's values, no grid and no batch scaling
        scores[(cfg.SOLVER.BASE_LR, cfg.SOLVER.WEIGHT_DECAY)] = math.nan
    grid = [(lr * scale, wd) for lr in lrs or [] for wd in wds]
    runs = [
        _override(
            cfg,
            **{
                "OUTPUT_DIR": str(root / "val" / task / method / f"lr{_fmt(lr_eff)}_wd{_fmt(wd)}"),
                "SOLVER.BASE_LR": lr_eff,
                "SOLVER.WEIGHT_DECAY": wd,
                "DATA.TRAIN_SPLIT": tr,
                "DATA.VAL_SPLIT": va,
                "DATA.TEST_SPLIT": te,
            },
        )
        for lr_eff, wd in grid
    ]
    failed: dict[tuple[float, float], str] = {}
    for (lr_eff, wd), result in zip(grid, run_all(runs)):
        scores[(lr_eff, wd)] = _score(result)
        if scores[(lr_eff, wd)] is None:
            failed[(lr_eff, wd)] = result["diverged"]
            print(f"[tune] {task} {method} lr {_fmt(lr_eff)} wd {_fmt(wd)}: diverged (scored as failed)")
        else:
            print(f"[tune] {task} {method} lr {_fmt(lr_eff)} wd {_fmt(wd)}: val top-1 {result['final_val_top1']:.2f}")
    try:
        best_lr, best_wd = select(scores)
    except AllDiverged as err:
        raise AllDiverged(
            f"{task} {method}: {err}; lower the learning rates (see the runs under {root / 'val'})"
        ) from None
    final_dir = root / "final" / task / method
    final_dir.mkdir(parents=True, exist_ok=True)
    rf.write_json(
        final_dir / "selected.json",
        {
            "lr": best_lr,
            "wd": best_wd,
            "criterion": "last-epoch val top-1 of the tuning runs",
            "grid": [
                {"lr": lr, "wd": wd, "val_top1": s, **({"diverged": failed[(lr, wd)]} if (lr, wd) in failed else {})}
                for (lr, wd), s in scores.items()
            ]
            if lrs
            else [],
        },
    )
    print(
        f"[tune] {task} {method}: selected lr {_fmt(best_lr)} wd {_fmt(best_wd)} "
        f"(val top-1 {scores[(best_lr, best_wd)]:.2f})"
    )
    runs = [
        _override(
            cfg,
            **{
                "OUTPUT_DIR": str(final_dir / f"seed{seed}"),
                "SEED": seed,
                "SOLVER.BASE_LR": best_lr,
                "SOLVER.WEIGHT_DECAY": best_wd,
                "DATA.TRAIN_SPLIT": ftr,
                "DATA.VAL_SPLIT": fva,
                "DATA.TEST_SPLIT": fte,
            },
        )
        for seed in seeds
    ]
    finals = run_all(runs)
    for seed, final in zip(seeds, finals):
        if "diverged" in final:
            print(f"[tune] {task} {method} seed {seed}: diverged (no result; the other seeds stand)")
        else:
            print(f"[tune] {task} {method} seed {seed}: test top-1 {_pct(final['final_test_top1'])}")
    return {"lr": best_lr, "wd": best_wd, "final": finals}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="")
    parser.add_argument(
        "--grid-search-type", default="", help="MODEL.TRANSFER_TYPE, or the original's names: topdown | finetune"
    )
    parser.add_argument("--lrs", type=float, nargs="+", help="learning rates before batch scaling (default: grid)")
    parser.add_argument("--fixed", action="store_true", help="no grid: the config's BASE_LR and WEIGHT_DECAY as given")
    parser.add_argument("--wds", type=float, nargs="+", default=WD_GRID, help="weight decays")
    parser.add_argument("--seeds", type=int, nargs="+", default=SEEDS, help="seeds of the final runs")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides")
    args = parser.parse_args(argv)
    opts = list(args.opts)
    with user_errors():
        if args.grid_search_type:  # an alias stands for its method, in the run's config too
            opts += ["MODEL.TRANSFER_TYPE", TRANSFER_METHODS.canonical(args.grid_search_type)]
        cfg = load_config(args.config_file, opts)
        method = TRANSFER_METHODS.lookup(cfg.MODEL.TRANSFER_TYPE)
        if not args.fixed and args.lrs is None and not method.lr_grid:
            raise UserError(f"no learning-rate grid for {method.name!r}; pass --lrs")
        lrs = None if args.fixed else (args.lrs or list(method.lr_grid))
        try:
            result = tune(cfg, lrs, args.wds, args.seeds)
        except AllDiverged as err:
            raise UserError(str(err)) from err
    print(
        json.dumps(
            {"lr": result["lr"], "wd": result["wd"], "test_top1": [r.get("final_test_top1") for r in result["final"]]}
        )
    )


if __name__ == "__main__":
    main()
