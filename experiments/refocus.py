"""When does refocusing help? ``bash scripts/refocus_experiment.sh`` (or ``python -m experiments.refocus``).

The paper's claim is that a top-down path pre-tuned on a large source task transfers better than the usual
methods. This runs that claim, offline, on a real DINOv2 ViT-S/14 (the demo's ONNX conversion):

1. Data: digits among distractors on real textures (``digits_clutter`` scenes), with **disjoint classes**:
   the source task (digits 0–4 by default, thousands of scenes) plays ImageNet's part; the target task
   (5–9) has VTAB-1k's shape: 800 train, 200 val, and a test split of 1,000 (one point = 10 images).
2. Input size: a linear probe (train800 → val200) at each candidate size; the chosen size is the one whose
   val top-1 is nearest to halfway between chance and 100 %, so that the probe is clearly above chance and
   clearly below its ceiling (ties: the smaller size). Test is never read here.
3. Pre-tuning: the project's ``pretune`` recipe (A_i, B_i, p; CE on pass 2 + 0.1 × reconstruction) on the source.
4. Every method on the target through ``tune``: a small lr grid on train800 → val200 (last-epoch val top-1
   picks the lr), then one final run per seed on train800val200 → test; same epochs for all.
5. ``summarize``'s table and bar chart over the methods, a refocusing grid (pre-tuned vs fresh path on the
   same target test images), and ``report.md`` with the chosen size, lrs and the time each stage took.

Everything lands under ``--out`` and every stage resumes: re-running the command skips finished runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from toast.files import atomic_write_text
from visual_classification.demo.dinov2_onnx import BACKBONE, cached_weights
from visual_classification.demo.tasks import write_clutter_classes
from visual_classification.pretune import main as pretune_main
from visual_classification.summarize import main as summarize_main
from visual_classification.train import load_config, train
from visual_classification.tune import tune
from visual_classification.visualize import main as visualize_main

CONFIG = Path(__file__).resolve().parent / "configs" / "refocus.yaml"
SOURCE, TARGET = "source", "target"
SIZE_PROBE_LR = 1e-2  # the linear probe's lr (AdamW) for the input-size choice


@dataclass(frozen=True)
class Variant:
    """One column of the table: a transfer type, its lr grid (AdamW, as used) and fixed options."""

    transfer: str
    lrs: tuple[float, ...]
    opts: dict = field(default_factory=dict)
    pretuned: bool = False


# Every grid spans the same head lrs (3e-3, 1e-2, 3e-2: the linear probe's); what differs is the lr of the part
# each method adapts (why each grid is where it is: visual_classification/README.md, "When refocusing helps").
# The caches of the protocol issue, where they change no number: pass 1 (frozen, no stochastic depth here) and
# the linear probe's features are computed once per image and split, kept in float32.
_FIRST_PASS_CACHE = {"MODEL.TOAST.CACHE_FIRST_PASS": True, "DATA.CACHE_DTYPE": "float32"}
_FEATURE_CACHE = {"DATA.CACHE_FEATURES": True, "DATA.CACHE_DTYPE": "float32"}
_TOP_DOWN = {"SOLVER.HEAD_LR_MULT": 30.0, **_FIRST_PASS_CACHE}
_TOP_DOWN_LRS = (1e-4, 3e-4, 1e-3)
_ADAPTER = {"SOLVER.HEAD_LR_MULT": 10.0}
_ADAPTER_LRS = (3e-4, 1e-3, 3e-3)
_LITE = {**_ADAPTER, **_FIRST_PASS_CACHE}
VARIANTS = {
    "linear": Variant("linear", (3e-3, 1e-2, 3e-2), _FEATURE_CACHE),
    "bias": Variant("bias", _ADAPTER_LRS, _ADAPTER),
    "lora": Variant("lora", _ADAPTER_LRS, _ADAPTER),
    "prompt": Variant("prompt", (1e-3, 3e-3, 1e-2), {"SOLVER.HEAD_LR_MULT": 3.0}),
    "toast": Variant("toast", _TOP_DOWN_LRS, _TOP_DOWN),
    "toast-B0": Variant("toast", _TOP_DOWN_LRS, {**_TOP_DOWN, "MODEL.TOAST.DECODER_INIT": "zero_to_value"}),
    "toast-pretuned": Variant("toast", _TOP_DOWN_LRS, _TOP_DOWN, pretuned=True),
    "toast-lite-pretuned": Variant("toast-lite", _ADAPTER_LRS, _LITE, pretuned=True),
}
# Pre-tuning (AdamW), chosen on the source's val split by refocus_study.py (findings in the README section above).
PRETUNE_OPTS = {"SOLVER.BASE_LR": 3e-4, "SOLVER.HEAD_LR_MULT": 10.0, **_FIRST_PASS_CACHE}
PRETUNE_EPOCHS = 8


def _flat(opts: dict) -> list[str]:
    return [str(x) for kv in opts.items() for x in kv]


class Stopwatch:
    """Seconds per stage, kept in ``timing.json`` so that a resumed run still reports what each stage cost."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}

    def run(self, stage: str, fn, *args):
        start = time.time()
        result = fn(*args)
        self.seconds[stage] = self.seconds.get(stage, 0.0) + round(time.time() - start, 1)
        atomic_write_text(self.path, json.dumps(self.seconds, indent=2) + "\n")
        return result


def check_args(args) -> None:
    """Every problem with the experiment's arguments at once, before anything runs."""
    problems = []
    shared = sorted(set(args.source_classes) & set(args.target_classes))
    if shared:
        problems.append(f"source and target classes must be disjoint; both hold {shared}")
    for name in ("source_train", "source_val", "target_train", "target_val", "test"):
        if getattr(args, name) < 1:
            problems.append(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if problems:
        raise SystemExit("error: " + "; ".join(problems))


def write_data(data: Path, args) -> None:
    """Source (thousands of scenes, train + val) and target (VTAB-1k shape) tasks; skipped when written."""
    source_sizes = {"train": args.source_train, "val": args.source_val}
    target_sizes = {"train800": args.target_train, "val200": args.target_val, "test": args.test}
    for name, classes, sizes, seed in (
        (SOURCE, args.source_classes, source_sizes, 1),
        (TARGET, args.target_classes, target_sizes, 0),
    ):
        provenance = data / name / "provenance.json"
        if provenance.is_file():
            recorded = json.loads(provenance.read_text())
            counts = {s: len(v) for s, v in recorded["mnist_index"].items()}
            if recorded["digit_of_label"] != list(classes) or counts != sizes:
                raise ValueError(
                    f"{data / name} holds digits {recorded['digit_of_label']} with splits {counts}, not "
                    f"{list(classes)} with {sizes}: choose another --out (OUT) or delete that folder"
                )
            continue
        write_clutter_classes(data, name, classes, sizes, seed=seed)


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
            **_FEATURE_CACHE,
            "DATA.TRAIN_SPLIT": "train800",
            "DATA.VAL_SPLIT": "val200",
            "DATA.TEST_SPLIT": "none",
            "SEED": 0,
            "OUTPUT_DIR": str(out / "size" / f"{size}px"),
        }
        scores[size] = train(load_config(str(CONFIG), _flat(opts) + args.opts))["final_val_top1"]
        print(f"[refocus] input {size} px: linear probe val top-1 {scores[size]:.1f} (chance {chance:.0f})")
    chosen = min(args.sizes, key=lambda s: (abs(scores[s] - middle), s))
    print(f"[refocus] input size {chosen} px: val top-1 nearest to {middle:.0f} %")
    return chosen, scores


def pretune_opts(weights: Path, data: Path, num_classes: int, size: int, epochs: int, run: Path) -> dict:
    """One pre-tuning run's overrides: the source's train → val (no test), the experiment's recipe."""
    return {
        **_base_opts(weights, data, SOURCE, num_classes, size, epochs),
        "DATA.TRAIN_SPLIT": "train",
        "DATA.VAL_SPLIT": "val",
        "DATA.TEST_SPLIT": "none",
        "OUTPUT_DIR": str(run),
        "SEED": 0,
        **PRETUNE_OPTS,
    }


def pretune_source(out: Path, weights: Path, size: int, args) -> Path:
    """Pre-tunes A_i, B_i and p on the source task with the project's recipe; the run's best/ folder."""
    run = out / "pretune"
    opts = pretune_opts(weights, out / "data", len(args.source_classes), size, args.pretune_epochs, run)
    pretune_main(["--config-file", str(CONFIG), *_flat(opts), *args.opts])
    return run / "best"


def tune_variant(out: Path, weights: Path, size: int, name: str, pretuned: Path | None, args) -> dict:
    """``tune``'s grid and seeded final runs for one variant, under ``out/runs/<variant>``."""
    variant = VARIANTS[name]
    opts = {
        **_base_opts(weights, out / "data", TARGET, len(args.target_classes), size, args.epochs),
        "MODEL.TRANSFER_TYPE": variant.transfer,
        "OUTPUT_DIR": str(out / "runs" / name),
        "SEED": 0,
        **variant.opts,
    }
    if variant.pretuned:
        opts["MODEL.TOPDOWN_WEIGHTS"] = str(pretuned)
    if args.grid == 1:  # no choice on val: the grid's middle lr, as given (a smoke test of the pipeline)
        opts["SOLVER.BASE_LR"] = variant.lrs[len(variant.lrs) // 2]
    cfg = load_config(str(CONFIG), _flat(opts) + args.opts)
    # tune scales its grid by batch/256 (the original's rule); the variants' lrs are meant as given.
    lrs = [lr * 256 / cfg.DATA.BATCH_SIZE for lr in variant.lrs] if args.grid == 3 else None
    return tune(cfg, lrs, [cfg.SOLVER.WEIGHT_DECAY], args.seeds)


def collect_finals(out: Path, names: list[str]) -> Path:
    """``out/table/final/target/<variant>/seed<k>``: copies of each variant's final ``results.json`` and
    ``config.yaml``, the layout in which ``summarize`` names a column by its folder (tune names it by the
    transfer type, which three TOAST variants share)."""
    table = out / "table"
    for name in names:
        runs = out / "runs" / name / "final" / TARGET / VARIANTS[name].transfer
        seeds = sorted(runs.glob("seed*/results.json"))
        if not seeds:
            raise FileNotFoundError(f"{runs} holds no finished final run of {name}")
        for results in seeds:
            copy = table / "final" / TARGET / name / results.parent.name
            copy.mkdir(parents=True, exist_ok=True)
            for file in ("results.json", "config.yaml"):
                shutil.copyfile(results.parent / file, copy / file)
    return table


def summarize_table(table: Path, out: Path) -> None:
    """``summarize``'s table, CSV and chart of the collected runs, written into ``out``."""
    summarize_main([str(table)])
    for file in ("summary.md", "summary.csv", "summary.png"):
        shutil.copyfile(table / file, out / file)


def draw_grid(out: Path, seed: int, count: int) -> list[Path]:
    """The pre-tuned path (top row) and the fresh one (bottom) on the same target test images."""
    pretuned = out / "runs" / "toast-pretuned" / "final" / TARGET / "toast" / f"seed{seed}"
    fresh = out / "runs" / "toast" / "final" / TARGET / "toast" / f"seed{seed}"
    visualize_main(["--adapter", str(pretuned), "--count", str(count), "--compare", str(fresh)])
    grids = []
    for i in range(count):
        grids.append(out / f"refocus_grid_{i}.png")
        shutil.copyfile(pretuned / "visualize" / f"image_{i}.png", grids[-1])
    return grids


def write_report(out: Path, args, size: int, size_scores: dict, selected: dict, seconds: dict) -> str:
    chance = 100.0 / len(args.target_classes)
    lines = [
        f"Source digits {args.source_classes} ({args.source_train} train / {args.source_val} val scenes), "
        f"target digits {args.target_classes} ({args.target_train} / {args.target_val} / {args.test} test scenes), "
        f"seeds {args.seeds}.",
        "",
        "Input size, linear probe val top-1 (train800 → val200, chance "
        f"{chance:.0f} %): " + ", ".join(f"{s} px {v:.1f}" for s, v in size_scores.items()) + f" → **{size} px**.",
        "",
        "| method | lr grid (val top-1 at the last epoch) | selected lr |",
        "|---|---|---|",
    ]
    for name, result in selected.items():
        grid = json.loads(
            (out / "runs" / name / "final" / TARGET / VARIANTS[name].transfer / "selected.json").read_text()
        )
        cells = ", ".join(f"{g['lr']:g}: {g['val_top1']:.1f}" for g in grid["grid"]) or "fixed"
        lines.append(f"| {name} | {cells} | {result['lr']:g} |")
    lines += ["", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {stage} | {value:.0f} |" for stage, value in seconds.items()]
    lines.append(f"| **all** | {sum(seconds.values()):.0f} |")
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "report.md", text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="output/refocus", help="weights cache, data, runs and the summary")
    parser.add_argument("--source-classes", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--target-classes", type=int, nargs="+", default=[5, 6, 7, 8, 9])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[56, 84], help="candidate input sizes (px)")
    parser.add_argument("--source-train", type=int, default=2000, help="source training scenes")
    parser.add_argument("--source-val", type=int, default=200, help="source validation scenes")
    parser.add_argument("--target-train", type=int, default=800, help="target train800 scenes (VTAB-1k: 800)")
    parser.add_argument("--target-val", type=int, default=200, help="target val200 scenes (VTAB-1k: 200)")
    parser.add_argument("--test", type=int, default=1000, help="target test scenes")
    parser.add_argument("--epochs", type=int, default=None, help="target epochs (default: the config's)")
    parser.add_argument("--pretune-epochs", type=int, default=PRETUNE_EPOCHS, help="source epochs")
    parser.add_argument(
        "--grid", type=int, default=3, choices=(1, 3), help="3: each method's lr grid on val; 1: its middle lr, fixed"
    )
    parser.add_argument("--grid-count", type=int, default=3, help="images in the refocusing grid")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides for every run")
    args = parser.parse_args(argv)
    check_args(args)
    out = Path(args.out)
    clock = Stopwatch(out / "timing.json")
    weights = clock.run("weights", cached_weights, out / "weights")
    clock.run("data", write_data, out / "data", args)
    size, size_scores = clock.run("input size", choose_size, out, weights, args)
    needs_pretune = any(VARIANTS[m].pretuned for m in args.methods)
    pretuned = clock.run("pretune", pretune_source, out, weights, size, args) if needs_pretune else None
    selected = {}
    for name in args.methods:
        selected[name] = clock.run(name, tune_variant, out, weights, size, name, pretuned, args)
    table = collect_finals(out, args.methods)
    clock.run("summary", summarize_table, table, out)
    if {"toast", "toast-pretuned"} <= set(args.methods):
        clock.run("grid", draw_grid, out, args.seeds[0], args.grid_count)
    print("\n" + write_report(out, args, size, size_scores, selected, clock.seconds))


if __name__ == "__main__":
    main()
