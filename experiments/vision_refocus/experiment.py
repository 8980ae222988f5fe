"""When does refocusing help? ``bash scripts/refocus_experiment.sh`` (or ``python -m experiments.vision_refocus``).

The paper's claim is that a top-down path pre-tuned on a large source task transfers better than the usual
methods. This runs that claim, offline, on a real DINOv2 ViT-S/14 (the demo's ONNX conversion), with controls:

1. Data: digits among distractors on real textures (``digits_clutter`` scenes), with **disjoint classes**:
   the source task (digits 0–4 by default, thousands of scenes) plays ImageNet's part; the target task
   (5–9) has VTAB-1k's shape: 800 train, 200 val, and a test split of 1,000. No MNIST image appears in two
   splits, neither as a labelled digit nor as a fragment (each split draws from its own pool).
2. Input size: a linear probe (train800 → val200) at each candidate size; the chosen size is the one whose
   val top-1 is nearest to halfway between chance and 100 %. Test is never read here.
3. Source training: TOAST's pre-tuning (the project's ``pretune`` recipe), and, for ``bias``, ``lora``,
   ``prompt`` and ``end2end``, the same method trained on the same source scenes for the same epochs (its
   grid's middle lr; best source-val epoch kept, as pre-tuning keeps it). Their ``-seq`` variants start on the
   target from it (``MODEL.INIT_FROM``: everything but the head). ``--source-seeds shared`` trains it once
   (seed 0) for every target seed, so the paired interval leaves out the source run's variance;
   ``per-seed`` trains one per target seed (the grids use the first seed's), so the interval covers it.
4. Every method on the target through ``tune``: a grid on train800 → val200 (the lr; the linear probe's L2
   strength), grown past an edge optimum (``runkit.lr_grid``), for each head factor of ``--head-factors``
   (the best factor and lr on val win), then one final run per seed (5 by default) on train800val200 → test.
5. With ``--pretune-lengths`` (multiples of ``--pretune-epochs``; 0: none), the pre-tuning curve: pre-tuned
   TOAST and each ``-seq`` baseline (the methods that see the source) at each source length, each with its own
   grid on val and final seeds; at 0 they are the fresh ``toast`` and the plain baselines. Paired by seed at
   each length (``pretune_curve.json``, ``pretune_curve.png``).
6. The best TOAST on val against every baseline, paired by seed (mean difference and 95 % t interval:
   ``experiments.stats``), a budget curve (the best TOAST and the two best baselines on val, 3 seeds, at each of
   ``--budgets`` target epochs, with the lr chosen at the main budget), charts (``plots``), and
   ``report.md`` with the grids, the flags (edge optima, collapsed final runs) and the time of each stage.

Everything lands under ``--out`` and every stage resumes: re-running the command skips finished runs. Runs go
``--jobs`` at a time (``experiments.jobs``; default 2 on a CPU), each once the run it starts from has finished.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from argparse import Namespace
from pathlib import Path

from experiments.jobs import Job, default_workers, run_jobs
from experiments.methods import as_overrides
from runkit.files import atomic_write_text
from runkit.lr_grid import interior_grid
from visual_classification.config import load_config
from visual_classification.demo.dinov2_onnx import BACKBONE, cached_weights
from visual_classification.pretune import main as pretune_main
from visual_classification.summarize import main as summarize_main
from visual_classification.train import train
from visual_classification.tune import tune
from visual_classification.visualize import main as visualize_main

from .digit_tasks import write_clutter_classes
from .methods import FEATURE_CACHE, FIRST_PASS_CACHE, METHODS, start_grid
from .photo_tasks import write_photo_classes
from .report import write_report, write_summary

CONFIG = Path(__file__).resolve().parent / "refocus.yaml"
SOURCE, TARGET = "source", "target"
SIZE_PROBE_LR = 1e-2  # the linear probe's lr (AdamW) for the input-size choice
# Scene generators: MNIST digits among digit fragments, or patches of ten photographs among patch fragments
# (classes index PHOTO_CLASSES); both on the same textures, both with no image (region) in two splits.
DOMAINS = {"digits": write_clutter_classes, "photos": write_photo_classes}


# Pre-tuning (AdamW), chosen on the source's val split by study.py (findings in visual_classification/README.md).
PRETUNE_OPTS = {"SOLVER.BASE_LR": 3e-4, "SOLVER.HEAD_LR_MULT": 10.0, **FIRST_PASS_CACHE}
PRETUNE_EPOCHS = 8
BUDGETS = (2, 6, 20)  # target epochs of the budget curve
BUDGET_SEEDS = 3  # the first three of --seeds
SOURCE_SEEDS = ("shared", "per-seed")  # the source runs: one (seed 0) for every target seed, or one per seed


class Stopwatch:
    """Seconds per stage, kept in ``timing.json`` so that a resumed run still reports what each stage cost."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}

    def run(self, stage: str, fn, *args):
        start = time.time()
        result = fn(*args)
        self.add(stage, time.time() - start)
        return result

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + seconds, 1)
        atomic_write_text(self.path, json.dumps(self.seconds, indent=2) + "\n")


def check_args(args) -> None:
    """Every problem with the experiment's arguments at once, before anything runs."""
    problems = []
    shared = sorted(set(args.source_classes) & set(args.target_classes))
    if shared:
        problems.append(f"source and target classes must be disjoint; both hold {shared}")
    for name in ("source_train", "source_val", "target_train", "target_val", "test"):
        if getattr(args, name) < 1:
            problems.append(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if any(f <= 0 for f in args.head_factors) or len(set(args.head_factors)) < len(args.head_factors):
        problems.append(f"--head-factors must be distinct and > 0, got {args.head_factors}")
    if any(m < 0 for m in args.pretune_lengths):
        problems.append(f"--pretune-lengths must be >= 0, got {args.pretune_lengths}")
    if args.pretune_lengths and not curve_methods(args.methods):
        problems.append("--pretune-lengths needs toast-pretuned or a -seq method in --methods")
    if problems:
        raise SystemExit("error: " + "; ".join(problems))


def _recorded(recorded: dict) -> tuple[str, list[int], dict[str, int]]:
    """(domain, classes, scenes per split) of a task's ``provenance.json``."""
    if recorded.get("domain") == "photos":
        return "photos", recorded["class_index"], {s: len(v) for s, v in recorded["boxes"].items()}
    return "digits", recorded["digit_of_label"], {s: len(v) for s, v in recorded["mnist_index"].items()}


def write_data(data: Path, args) -> None:
    """Source (thousands of scenes, train + val) and target (VTAB-1k shape) tasks of ``args.domain``; skipped
    when written (and refused when the folder holds other scenes)."""
    source_sizes = {"train": args.source_train, "val": args.source_val}
    target_sizes = {"train800": args.target_train, "val200": args.target_val, "test": args.test}
    for name, classes, sizes, seed in (
        (SOURCE, args.source_classes, source_sizes, 1),
        (TARGET, args.target_classes, target_sizes, 0),
    ):
        provenance = data / name / "provenance.json"
        if provenance.is_file():
            held = _recorded(json.loads(provenance.read_text()))
            if held != (args.domain, list(classes), sizes):
                raise ValueError(
                    f"{data / name} holds {held[0]} classes {held[1]} with splits {held[2]}, not {args.domain} "
                    f"classes {list(classes)} with {sizes}: choose another --out (OUT) or delete that folder"
                )
            continue
        DOMAINS[args.domain](data, name, classes, sizes, seed=seed)


def _base_opts(weights: Path, data: Path, task: str, num_classes: int, size: int, epochs: int | None) -> dict:
    opts = {
        "MODEL.BACKBONE": BACKBONE,
        "MODEL.MODEL_ROOT": str(weights),
        "DATA.DATAPATH": str(data),
        "DATA.NAME": task,
        "DATA.NUMBER_CLASSES": num_classes,
        "DATA.FORMAT": "vtab",
        "DATA.CROPSIZE": size,
    }
    if epochs:
        opts["SOLVER.TOTAL_EPOCH"] = epochs
    return opts


def choose_size(out: Path, weights: Path, args) -> tuple[int, dict[int, float]]:
    """The candidate input size whose linear probe (train800 → val200) is nearest to halfway from chance to 100 %."""
    chance = 100.0 / len(args.target_classes)
    middle = (chance + 100.0) / 2
    scores = {}
    for size in args.sizes:
        opts = {
            **_base_opts(weights, out / "data", TARGET, len(args.target_classes), size, args.epochs),
            "MODEL.TRANSFER_TYPE": "linear",
            "SOLVER.BASE_LR": SIZE_PROBE_LR,
            **FEATURE_CACHE,
            "DATA.TRAIN_SPLIT": "train800",
            "DATA.VAL_SPLIT": "val200",
            "DATA.TEST_SPLIT": "none",
            "SEED": 0,
            "OUTPUT_DIR": str(out / "size" / f"{size}px"),
        }
        scores[size] = train(load_config(str(CONFIG), as_overrides(opts) + args.opts))["final_val_top1"]
        print(f"[refocus] input {size} px: linear probe val top-1 {scores[size]:.1f} (chance {chance:.0f})")
    chosen = min(args.sizes, key=lambda s: (abs(scores[s] - middle), s))
    print(f"[refocus] input size {chosen} px: val top-1 nearest to {middle:.0f} %")
    return chosen, scores


def pretune_opts(
    weights: Path, data: Path, num_classes: int, size: int, epochs: int, run: Path, seed: int = 0
) -> dict:
    """One pre-tuning run's overrides: the source's train → val (no test), the experiment's recipe."""
    return {**source_opts(weights, data, num_classes, size, epochs, run, seed), **PRETUNE_OPTS}


def source_seed(args, seed: int) -> int:
    """The seed of the source run that a target run of ``seed`` starts from (``--source-seeds``)."""
    return seed if args.source_seeds == "per-seed" else 0


def source_run(out: Path, key: str, args, seed: int) -> Path:
    """The folder of the source run ``key`` ("pretune" or a transfer type) that a target ``seed`` starts from."""
    base = out / "pretune" if key == "pretune" else out / "source_runs" / key
    return base / f"seed{seed}" if args.source_seeds == "per-seed" else base


def source_job(key: str, args, seed: int) -> str:
    """The job name of that source run."""
    name = "pretune" if key == "pretune" else f"source {key}"
    return f"{name} seed{seed}" if args.source_seeds == "per-seed" else name


def source_starts(out: Path, methods: list[str], args) -> dict[str, dict[int, Path]]:
    """Where each source-side run the methods need keeps its best epoch, per target seed:
    ``{"pretune" | transfer: {seed: best/}}`` (known before the runs exist, so that the target jobs can be queued
    behind them)."""
    keys = ["pretune"] if any(METHODS[m].pretuned for m in methods) else []
    keys += list(dict.fromkeys(METHODS[m].transfer for m in methods if METHODS[m].source_stage))
    return {k: {s: source_run(out, k, args, source_seed(args, s)) / "best" for s in args.seeds} for k in keys}


def pretune_source(out: Path, weights: Path, size: int, args, seed: int = 0) -> Path:
    """Pre-tunes A_i, B_i and p on the source task with the project's recipe; the run's best/ folder."""
    run = source_run(out, "pretune", args, seed)
    opts = pretune_opts(weights, out / "data", len(args.source_classes), size, args.pretune_epochs, run, seed)
    pretune_main(["--config-file", str(CONFIG), *as_overrides(opts), *args.opts])
    return run / "best"


def source_opts(weights: Path, data: Path, num_classes: int, size: int, epochs: int, run: Path, seed: int = 0) -> dict:
    """A run on the source's train → val (no test): pre-tuning, or a baseline's source stage."""
    return {
        **_base_opts(weights, data, SOURCE, num_classes, size, epochs),
        "DATA.TRAIN_SPLIT": "train",
        "DATA.VAL_SPLIT": "val",
        "DATA.TEST_SPLIT": "none",
        "OUTPUT_DIR": str(run),
        "SEED": seed,
    }


def train_on_source(out: Path, weights: Path, size: int, transfer: str, args, seed: int = 0) -> Path:
    """``transfer`` trained on the source scenes for the pre-tuning's epochs, at the middle of its target grid
    (no source-side tuning; the best source-val epoch is kept, as pre-tuning keeps it): the run's best/."""
    method = next(m for m in METHODS.values() if m.transfer == transfer and m.source_stage)
    run = source_run(out, transfer, args, seed)
    opts = {
        **source_opts(weights, out / "data", len(args.source_classes), size, args.pretune_epochs, run, seed),
        "MODEL.TRANSFER_TYPE": transfer,
        "SOLVER.BASE_LR": method.middle_lr,
        **method.opts,
    }
    train(load_config(str(CONFIG), as_overrides(opts) + args.opts))
    return run / "best"


def method_config(
    out: Path, weights: Path, size: int, name: str, starts: dict, args, root: Path, epochs=None, seed=None, head=1.0
):
    """The target config of one method (its lr still the config's), its runs under ``root``, starting from the
    source runs of target ``seed`` (default: the first, whose source runs the grids use), its head multiplier
    scaled by ``head``."""
    method = METHODS[name]
    seed = args.seeds[0] if seed is None else seed
    opts = {
        **_base_opts(weights, out / "data", TARGET, len(args.target_classes), size, epochs or args.epochs),
        "MODEL.TRANSFER_TYPE": method.transfer,
        "OUTPUT_DIR": str(root),
        "SEED": 0,
        # val at the last epoch only: the grid reads that one, and a final run's val200 is in its training set
        "SOLVER.EVAL_PERIOD": epochs or target_epochs(args),
        **method.opts,
    }
    if head != 1.0:
        opts["SOLVER.HEAD_LR_MULT"] = head * float(method.opts.get("SOLVER.HEAD_LR_MULT", 1.0))
    if method.pretuned:
        opts["MODEL.TOPDOWN_WEIGHTS"] = str(starts["pretune"][seed])
    if method.source_stage:
        opts["MODEL.INIT_FROM"] = str(starts[method.transfer][seed])
    return load_config(str(CONFIG), as_overrides(opts) + args.opts)


def head_factors(name: str, args) -> tuple[float, ...]:
    """The factors of the method's head multiplier tried on val (none for the L-BFGS probe: it has no lr)."""
    return (1.0,) if METHODS[name].axis == "wd" else tuple(args.head_factors)


def method_root(out: Path, name: str, head: float = 1.0) -> Path:
    """Where a method's runs at head factor ``head`` live."""
    root = out / "runs" / name
    return root if head == 1.0 else root / f"head{head:g}"


def chosen_root(out: Path, name: str) -> Path:
    """Where a method's final runs live: under the head factor its grid chose (``grid.json``)."""
    grid = out / "runs" / name / "grid.json"
    head = json.loads(grid.read_text()).get("head_factor", 1.0) if grid.is_file() else 1.0
    return method_root(out, name, head)


def _grid_json(root: Path, name: str) -> Path:
    return root / "final" / TARGET / METHODS[name].transfer / "selected.json"


def _tune_grid(cfg, name: str, values: list[float]) -> tuple[list[float], list[float]]:
    """``tune``'s (lrs, wds) for ``values`` on the method's axis. tune scales its lrs by batch/256 (the original's
    rule); the values here are meant as given, so that scale is undone."""
    scale = 256 / cfg.DATA.BATCH_SIZE
    if METHODS[name].axis == "wd":
        return [cfg.SOLVER.BASE_LR * scale], list(values)
    return [v * scale for v in values], [cfg.SOLVER.WEIGHT_DECAY]


def val_scores(cfg, name: str, values: list[float]) -> dict[float, float | None]:
    """Every grid value's last-epoch val top-1 (train800 → val200) through ``tune`` with no final run (finished
    grid points are skipped)."""
    tune(cfg, *_tune_grid(cfg, name, values), [])
    grid = json.loads(_grid_json(Path(cfg.OUTPUT_DIR), name).read_text())["grid"]
    return {value: point["val_top1"] for value, point in zip(values, grid)}


def _with(cfg, lr: float, wd: float):
    cfg = cfg.clone()
    cfg.defrost()
    cfg.SOLVER.BASE_LR = lr
    cfg.SOLVER.WEIGHT_DECAY = wd
    cfg.freeze()
    return cfg


def _fixed_point(cfg, name: str) -> tuple[float, float]:
    """(lr, wd) with ``--grid 1``: the middle of the method's grid on its axis, the config's other value."""
    middle = METHODS[name].middle_lr
    return (cfg.SOLVER.BASE_LR, middle) if METHODS[name].axis == "wd" else (middle, cfg.SOLVER.WEIGHT_DECAY)


def choose_method_lr(out: Path, weights: Path, size: int, name: str, starts: dict, args) -> dict:
    """The method's grid on val (grown past an edge optimum) at each head factor, no final run: ``{"lr", "wd",
    "head", "val", "grid": Grid | None, "heads": {factor: Grid}}``; ``grid.json`` records the choice. With
    ``--grid 1`` its middle value at head factor 1, fixed (no val score)."""
    if args.grid == 1:  # no choice on val: the grid's middle value, as given (a smoke test of the pipeline)
        cfg = method_config(out, weights, size, name, starts, args, method_root(out, name))
        lr, wd = _fixed_point(cfg, name)
        return {"lr": lr, "wd": wd, "head": 1.0, "val": None, "grid": None, "heads": {}}
    heads, chosen = {}, {}
    for head in head_factors(name, args):
        cfg = method_config(out, weights, size, name, starts, args, method_root(out, name, head), head=head)
        grid = interior_grid(
            lambda v, cfg=cfg: val_scores(cfg, name, v), start_grid(name, args.domain), higher_is_better=True
        )
        if grid.every_lr_failed:
            continue
        heads[head] = grid
        chosen[head] = tune(cfg, *_tune_grid(cfg, name, grid.lrs), [])  # the grid's runs, cached
    if not heads:
        raise RuntimeError(f"{name}: every grid point diverged on val at every head factor {head_factors(name, args)}")
    order = list(heads)
    head = max(order, key=lambda h: (heads[h].scores[heads[h].best], -order.index(h)))
    grid = heads[head]
    record = {"axis": METHODS[name].axis, "lrs": grid.lrs, "val_top1": [grid.scores[v] for v in grid.lrs]}
    record |= {"best": grid.best, "extensions": grid.extensions, "at_edge": grid.at_edge, "head_factor": head}
    record |= {"lr": chosen[head]["lr"], "wd": chosen[head]["wd"]}
    record["head_factors"] = {f"{h:g}": {"best": g.best, "val_top1": g.scores[g.best]} for h, g in heads.items()}
    atomic_write_text(out / "runs" / name / "grid.json", json.dumps(record, indent=2) + "\n")
    return {"lr": record["lr"], "wd": record["wd"], "head": head, "val": grid.scores[grid.best], "grid": grid,
            "heads": heads}  # fmt: skip


def final_run(out: Path, weights: Path, size: int, name: str, starts: dict, args, seed: int) -> None:
    """One seed's run at the method's chosen point (``grid.json``; ``--grid 1``: the fixed one) on
    train800val200 → test, starting from that seed's source runs."""
    head, point = 1.0, None
    if args.grid != 1:
        record = json.loads((out / "runs" / name / "grid.json").read_text())
        head, point = record["head_factor"], (record["lr"], record["wd"])
    cfg = method_config(out, weights, size, name, starts, args, method_root(out, name, head), seed=seed, head=head)
    lr, wd = point or _fixed_point(cfg, name)
    tune(_with(cfg, lr, wd), None, [wd], [seed])


def final_test_scores(out: Path, name: str, root: Path | None = None) -> dict[int, float]:
    """``{seed: final test top-1}`` of a method's finished final runs (diverged runs have none)."""
    runs = (root or chosen_root(out, name)) / "final" / TARGET / METHODS[name].transfer
    scores = {}
    for results in sorted(runs.glob("seed*/results.json")):
        value = json.loads(results.read_text()).get("final_test_top1")
        if value is not None:
            scores[int(results.parent.name.removeprefix("seed"))] = float(value)
    return scores


def budget_methods(selected: dict) -> list[str]:
    """The best TOAST and the two best baselines on val (the comparison the headline makes, and its rivals)."""
    val = {n: r["val"] for n, r in selected.items() if r["val"] is not None}
    toast = sorted((n for n in val if METHODS[n].is_toast), key=lambda n: -val[n])[:1]
    rivals = sorted((n for n in val if not METHODS[n].is_toast), key=lambda n: -val[n])[:2]
    return toast + rivals


def budget_run(out: Path, weights: Path, size: int, name: str, chosen: dict, epochs: int, starts: dict, args, seed):
    """One seed of the budget curve: ``name`` at its point (``chosen``: lr, wd and head factor, chosen at the main
    budget) for ``epochs`` target epochs, train800val200 → test, under ``out/budget/<name>/ep<epochs>``."""
    root = out / "budget" / name / f"ep{epochs}"
    cfg = method_config(out, weights, size, name, starts, args, root, epochs, seed=seed, head=chosen["head"])
    tune(_with(cfg, chosen["lr"], chosen["wd"]), None, [chosen["wd"]], [seed])


def _point(chosen: dict) -> dict:
    """The picklable part of a method's choice: lr, wd and head factor."""
    return {k: chosen[k] for k in ("lr", "wd", "head")}


def budget_jobs(out: Path, weights: Path, size: int, selected: dict, starts: dict, args) -> dict[str, Job]:
    """A job per method, budget and seed (the first 3 seeds) of the curve; the main budget's runs are reused."""
    main_epochs = target_epochs(args)
    return {
        f"budget {name} ep{epochs} seed{seed}": Job(
            budget_run, (out, weights, size, name, _point(selected[name]), epochs, starts, args, seed)
        )
        for name in budget_methods(selected)
        for epochs in args.budgets
        if epochs != main_epochs
        for seed in args.seeds[:BUDGET_SEEDS]
    }


def budget_curve(out: Path, selected: dict, args) -> dict:
    """``{method: {epochs: {seed: test top-1}}}`` from the finished runs of ``budget_jobs``, into budget.json
    (by seed, so that two methods' differences pair the runs that share a seed)."""
    main_epochs = target_epochs(args)
    seeds = args.seeds[:BUDGET_SEEDS]
    curves: dict[str, dict[int, dict[int, float]]] = {}
    for name in budget_methods(selected):
        curves[name] = {}
        for epochs in args.budgets:
            root = None if epochs == main_epochs else out / "budget" / name / f"ep{epochs}"
            scores = final_test_scores(out, name, root)
            curves[name][epochs] = {s: scores[s] for s in seeds if s in scores}
    atomic_write_text(out / "budget.json", json.dumps(curves, indent=2) + "\n")
    return curves


def target_epochs(args) -> int:
    return args.epochs or load_config(str(CONFIG), list(args.opts)).SOLVER.TOTAL_EPOCH


def collect_finals(out: Path, names: list[str]) -> Path:
    """``out/table/final/target/<method>/seed<k>``: copies of each method's final ``results.json`` and
    ``config.yaml``, the layout in which ``summarize`` names a column by its folder (tune names it by the
    transfer type, which several methods share)."""
    table = out / "table"
    for name in names:
        runs = chosen_root(out, name) / "final" / TARGET / METHODS[name].transfer
        seeds = sorted(runs.glob("seed*/results.json"))
        if not seeds:
            raise FileNotFoundError(f"{runs} holds no finished final run of {name}")
        for results in seeds:
            copy = table / "final" / TARGET / name / results.parent.name
            copy.mkdir(parents=True, exist_ok=True)
            for file in ("results.json", "config.yaml"):
                shutil.copyfile(results.parent / file, copy / file)
    return table


def summarize_csv(table: Path, out: Path) -> None:
    """``summarize``'s numeric CSV (task, method, mean, std, n) of the collected runs, into ``out``."""
    summarize_main([str(table)])
    shutil.copyfile(table / "summary.csv", out / "summary.csv")


def draw_grid(out: Path, seed: int, count: int) -> list[Path]:
    """The pre-tuned path (top row) and the fresh one (bottom) on the same target test images."""
    pretuned = chosen_root(out, "toast-pretuned") / "final" / TARGET / "toast" / f"seed{seed}"
    fresh = chosen_root(out, "toast") / "final" / TARGET / "toast" / f"seed{seed}"
    visualize_main(["--adapter", str(pretuned), "--count", str(count), "--compare", str(fresh)])
    grids = []
    for i in range(count):
        grids.append(out / f"refocus_grid_{i}.png")
        shutil.copyfile(pretuned / "visualize" / f"image_{i}.png", grids[-1])
    return grids


def training_jobs(out: Path, weights: Path, size: int, starts: dict, args) -> dict[str, Job]:
    """Every run of the table as jobs: the source-side runs (one, or one per seed: ``--source-seeds``), each
    method's grid on val after the source run it starts from (the first seed's), and each seed's final run after
    its grid and its own source run."""
    jobs: dict[str, Job] = {}
    for key in starts:
        for seed in dict.fromkeys(source_seed(args, s) for s in args.seeds):
            fn, fn_args = (pretune_source, ()) if key == "pretune" else (train_on_source, (key,))
            jobs[source_job(key, args, seed)] = Job(fn, (out, weights, size, *fn_args, args, seed))

    def after(name: str, seed: int) -> tuple[str, ...]:
        method = METHODS[name]
        key = "pretune" if method.pretuned else method.transfer if method.source_stage else None
        return () if key is None else (source_job(key, args, source_seed(args, seed)),)

    for name in args.methods:
        jobs[name] = Job(choose_method_lr, (out, weights, size, name, starts, args), after(name, args.seeds[0]))
    for name in args.methods:
        for seed in args.seeds:
            jobs[f"{name} seed{seed}"] = Job(
                final_run, (out, weights, size, name, starts, args, seed), (name, *after(name, seed))
            )
    return jobs


def curve_methods(methods: list[str]) -> dict[str, str]:
    """The methods the pre-tuning curve follows, each with its counterpart without source training:
    ``{"toast-pretuned": "toast", "<m>-seq": "<m>"}``."""
    followed = {m: "toast" for m in methods if m == "toast-pretuned"}
    return followed | {m: m.removesuffix("-seq") for m in methods if METHODS[m].source_stage}


def pretune_curve(out: Path, weights: Path, size: int, args, record) -> dict:
    """``{multiple: {"epochs": source epochs, "scores": {method: {seed: test top-1}}}}`` for each multiple of
    ``--pretune-epochs`` in ``--pretune-lengths``, into ``pretune_curve.json``. Multiple 1 is the main table's
    runs; 0 the counterparts without source training (the main table's where it ran them); every other length
    its own source runs, grids and seeds under ``out/pretune_curve/x<multiple>`` (the study's data, linked)."""
    followed = curve_methods(args.methods)
    curve = {}
    for multiple in args.pretune_lengths:
        names = followed if multiple == 0 else {m: m for m in followed}
        to_run = [] if multiple == 1 else [n for n in names.values() if multiple != 0 or n not in args.methods]
        sub = out if not to_run else out / "pretune_curve" / f"x{multiple:g}"
        if to_run:
            sub.mkdir(parents=True, exist_ok=True)
            if not (sub / "data").exists():
                (sub / "data").symlink_to((out / "data").resolve(), target_is_directory=True)
            epochs = round(multiple * args.pretune_epochs)
            sub_args = Namespace(**{**vars(args), "methods": to_run, "pretune_epochs": epochs, "budgets": []})
            starts = source_starts(sub, to_run, sub_args)
            run_jobs(training_jobs(sub, weights, size, starts, sub_args), args.jobs, on_done=record)
        scores = {m: final_test_scores(sub if n in to_run else out, n) for m, n in names.items()}
        curve[f"{multiple:g}"] = {"epochs": round(multiple * args.pretune_epochs), "scores": scores}
    atomic_write_text(out / "pretune_curve.json", json.dumps(curve, indent=2) + "\n")
    return curve


def _stage(job: str) -> str:
    """The timing table's row of a job: a method's grid and seeds add up under its name, the curve's runs
    under "budget curve"."""
    if job.startswith("budget "):
        return "budget curve"
    return job.rsplit(" seed", 1)[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.vision_refocus",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="output/refocus", help="weights cache, data, runs and the summary")
    parser.add_argument(
        "--domain", default="digits", choices=list(DOMAINS), help="digits: MNIST; photos: scikit-image photographs"
    )
    parser.add_argument("--source-classes", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--target-classes", type=int, nargs="+", default=[5, 6, 7, 8, 9])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[56, 84], help="candidate input sizes (px)")
    parser.add_argument("--source-train", type=int, default=2000, help="source training scenes")
    parser.add_argument("--source-val", type=int, default=200, help="source validation scenes")
    parser.add_argument("--target-train", type=int, default=800, help="target train800 scenes (VTAB-1k: 800)")
    parser.add_argument("--target-val", type=int, default=200, help="target val200 scenes (VTAB-1k: 200)")
    parser.add_argument("--test", type=int, default=1000, help="target test scenes")
    parser.add_argument("--epochs", type=int, default=None, help="target epochs (default: the config's)")
    parser.add_argument(
        "--pretune-epochs", type=int, default=PRETUNE_EPOCHS, help="source epochs (pre-tuning and the -seq methods)"
    )
    parser.add_argument(
        "--budgets", type=int, nargs="*", default=list(BUDGETS), help="target epochs of the budget curve (none: skip)"
    )
    parser.add_argument(
        "--grid", type=int, default=3, choices=(1, 3), help="3: each method's lr grid on val; 1: its middle lr, fixed"
    )
    parser.add_argument(
        "--head-factors",
        type=float,
        nargs="+",
        default=[1.0],
        help="factors of each method's head multiplier, each with its own lr grid, the best on val kept "
        "(e.g. 0.3 1 3; default: the method's multiplier only)",
    )
    parser.add_argument(
        "--source-seeds",
        default="shared",
        choices=SOURCE_SEEDS,
        help="shared: one source run (seed 0) for every target seed; per-seed: one per target seed",
    )
    parser.add_argument(
        "--pretune-lengths",
        type=float,
        nargs="*",
        default=[],
        help="the pre-tuning curve: source lengths as multiples of --pretune-epochs (e.g. 0 1 4 16; default: none)",
    )
    parser.add_argument("--grid-count", type=int, default=3, help="images in the refocusing grid")
    parser.add_argument(
        "--jobs", type=int, default=None, help="runs side by side (default: 2 on a CPU with 2+ cores, 1 on a GPU)"
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides for every run")
    args = parser.parse_args(argv)
    check_args(args)
    out = Path(args.out)
    clock = Stopwatch(out / "timing.json")
    weights = clock.run("weights", cached_weights, out / "weights")
    clock.run("data", write_data, out / "data", args)
    size, size_scores = clock.run("input size", choose_size, out, weights, args)
    starts = source_starts(out, args.methods, args)
    jobs = args.jobs = args.jobs or default_workers()
    print(f"[refocus] {jobs} job(s) at a time")

    def record(name: str, result, seconds: float) -> None:
        clock.add(_stage(name), seconds)

    done = run_jobs(training_jobs(out, weights, size, starts, args), jobs, on_done=record)
    selected = {name: done[name] for name in args.methods}
    table = collect_finals(out, args.methods)
    clock.run("summary", summarize_csv, table, out)
    curves = {}
    if args.budgets and args.grid == 3:  # the curve needs each method's lr chosen on val
        run_jobs(budget_jobs(out, weights, size, selected, starts, args), jobs, on_done=record)
        curves = budget_curve(out, selected, args)
    pretuning = {}
    if args.pretune_lengths:

        def record_curve(name: str, result, seconds: float) -> None:
            clock.add("pre-tuning curve", seconds)

        pretuning = pretune_curve(out, weights, size, args, record_curve)
    if {"toast", "toast-pretuned"} <= set(args.methods):
        clock.run("grid", draw_grid, out, args.seeds[0], args.grid_count)
    tests = {name: final_test_scores(out, name) for name in args.methods}
    chance = 100.0 / len(args.target_classes)
    print("\n" + write_summary(out, selected, tests, curves, chance, target_epochs(args), pretuning))
    print(write_report(out, args, size, size_scores, selected, tests, chance, clock.seconds))
