"""The stages of the language refocusing experiment; every stage's result is a file, so a re-run resumes.

1. tasks (train / val / test, test items unseen) and the real-text corpus (deduplicated against them);
2. pre-tuning of the top-down path through ``language_generation.pretune``'s recipe, its lr (``pretune_lrs``,
   grown past a winning edge) and its length chosen on the corpus' val split by the pass-2 LM loss alone (the
   reconstruction term, about 300x larger, would decide otherwise), beside the bare model's and the fresh
   path's loss there; the pre-tuned methods enter the comparison only where the pre-tuned path beats the fresh
   one on val. The LoRA control on the same tokens at the chosen lr;
3. per method, an lr grid on val (answer loss, first seed, the largest step count), extended past a
   winning edge; then every seed at the chosen lr, scored on test (greedy exact match, answer loss);
4. the budget curve (every step count) for the best TOAST and the best baseline (chosen on val);
5. with ``pretune_lengths`` (multiples of ``pretune_steps``; 0: none), the pre-tuning curve: ``toast-pre`` and
   ``lora-corpus`` (the baseline that sees the same corpus) at each length, each with its own pre-tuning, grids
   and seeds; at 0 they are ``toast-fresh`` and ``lora-r4``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from experiments.jobs import Job, run_jobs
from language_generation.config import load_config
from language_generation.methods.toast import attach_toast
from language_generation.model import build_tokenizer, load_base_model
from language_generation.pretune import PRETUNE_DEFAULTS
from language_generation.run_files import read_metrics
from language_generation.train import train
from language_generation.trained_run import load_model
from runkit.files import atomic_write_text
from runkit.lr_grid import MAX_EXTENSIONS, interior_grid

from .corpus import build_corpus
from .evaluate import score
from .methods import METHODS, failed_run
from .tasks import answers_in, make_split

logger = logging.getLogger(__name__)


@dataclass
class Setup:
    out: Path
    model: Path
    methods: list[str]
    families: tuple[str, ...]
    seeds: list[int]
    steps: list[int]
    pretune_steps: int
    pretune_checks: int = 3
    pretune_lrs: tuple[float, ...] = (1e-3,)  # pre-tuning lrs, chosen on the corpus' val split (one: fixed)
    block_size: int = 128
    batch: int = 8
    train_per_family: int = 50
    val_per_family: int = 10
    test_per_family: int = 50
    corpus_packages: tuple[str, ...] = ("torch", "transformers", "datasets", "numpy")
    corpus_root: Path | None = None
    corpus_records: int = 3000
    corpus_val_fraction: float = 0.05
    val_blocks: int = 4  # 128-token blocks of the corpus val split scored per pre-tuning checkpoint
    grid_size: int = 3  # 3: each method's grid on val, extended past a winning edge; 1: its middle lr, fixed
    pretune_lengths: tuple[float, ...] = ()  # the pre-tuning curve's lengths, multiples of pretune_steps
    jobs: int = 1  # training runs side by side (experiments.jobs: one process each, an equal share of the cores)
    times: dict[str, float] = field(default_factory=dict)


def _json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _write(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(value, indent=2) + "\n")


class Stage:
    """Times a stage into ``setup.times`` (seconds of this invocation; a resumed stage takes ~0)."""

    def __init__(self, setup: Setup, name: str) -> None:
        self.setup, self.name = setup, name

    def __enter__(self):
        self.start = time.time()
        print(f"== {self.name}", flush=True)

    def __exit__(self, *exc):
        self.setup.times[self.name] = self.setup.times.get(self.name, 0.0) + time.time() - self.start


# ---------------------------------------------------------------------------------------------------
# 1. data
# ---------------------------------------------------------------------------------------------------


def make_data(setup: Setup) -> dict[str, list[dict]]:
    splits = {
        "train": make_split(setup.families, "train", setup.train_per_family, 0),
        "val": make_split(setup.families, "val", setup.val_per_family, 0),
        "test": make_split(setup.families, "test", setup.test_per_family, 0),
    }
    for name, records in splits.items():
        path = setup.out / "data" / f"{name}.json"
        if not path.is_file():
            _write(path, records)
    train_path = setup.out / "data" / "train_alpaca.json"
    if not train_path.is_file():
        _write(train_path, [{k: r[k] for k in ("instruction", "input", "output")} for r in splits["train"]])
    return splits


def corpus(setup: Setup, splits: dict[str, list[dict]]) -> dict:
    banned = answers_in(splits["test"]) | answers_in(splits["val"])
    return build_corpus(
        setup.out / "corpus", banned, setup.corpus_packages, setup.corpus_val_fraction, root=setup.corpus_root
    )


# ---------------------------------------------------------------------------------------------------
# 2. pre-tuning and its length; the LoRA control
# ---------------------------------------------------------------------------------------------------


def _corpus_opts(setup: Setup, out: Path, steps: int, lr: float, seed: int = 0) -> list[str]:
    return [
        "MODEL.NAME_OR_PATH", str(setup.model), "MODEL.DTYPE", "float32", "SEED", str(seed),
        "DATA.PATH", str(setup.out / "corpus" / "train.jsonl"), "DATA.BLOCK_SIZE", str(setup.block_size),
        "DATA.MAX_RECORDS", str(setup.corpus_records), "TRAIN.MAX_STEPS", str(steps),
        "TRAIN.PER_DEVICE_TRAIN_BATCH_SIZE", "4", "TRAIN.GRADIENT_ACCUMULATION_STEPS", "1",
        "TRAIN.LEARNING_RATE", str(lr), "TRAIN.LOGGING_STEPS", str(max(1, steps // 10)),
        "TRAIN.USE_CPU", "True", "OUTPUT_DIR", str(out),
    ]  # fmt: skip


def val_blocks(setup: Setup, tokenizer) -> torch.Tensor:
    """The first ``val_blocks`` blocks of the corpus' val split (documents joined with EOS, as training does)."""
    stream: list[int] = []
    for line in (setup.out / "corpus" / "val.jsonl").read_text().splitlines():
        stream += tokenizer(json.loads(line)["text"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        if len(stream) >= setup.val_blocks * setup.block_size:
            break
    usable = len(stream) // setup.block_size * setup.block_size
    if usable == 0:
        raise ValueError(f"{setup.out / 'corpus' / 'val.jsonl'} is shorter than one {setup.block_size}-token block")
    return torch.tensor(stream[:usable]).view(-1, setup.block_size)[: setup.val_blocks]


def _pretune_cfg(setup: Setup, weights: Path | None):
    return load_config("", [*_corpus_opts(setup, setup.out / "pretune", 1, setup.pretune_lrs[0]),
                            "MODEL.TOPDOWN_WEIGHTS", str(weights) if weights else ""], defaults=PRETUNE_DEFAULTS)  # fmt: skip


@torch.no_grad()
def pretune_val_losses(setup: Setup, weights: Path | None, blocks: torch.Tensor) -> dict:
    """Pass-2 LM loss and reconstruction loss (coefficient 1, the recipe's) of a path on the val blocks."""
    cfg = _pretune_cfg(setup, weights)
    torch.manual_seed(0)
    model = attach_toast(load_base_model(cfg), cfg).eval()
    lm = recon = 0.0
    for block in blocks.split(4):
        out = model(input_ids=block, labels=block)
        recon += float(out.recon_loss) * len(block)  # recon_coef × R, carried in the output
        lm += (float(out.loss) - float(out.recon_loss)) * len(block)
    return {"lm": lm / len(blocks), "recon": recon / len(blocks)}


@torch.no_grad()
def bare_val_loss(setup: Setup, blocks: torch.Tensor) -> float:
    """The base model's LM loss on the val blocks, without a top-down path: what a path has to beat."""
    model = load_base_model(_pretune_cfg(setup, None)).eval()
    return sum(float(model(input_ids=b, labels=b).loss) * len(b) for b in blocks.split(4)) / len(blocks)


def pretune_run(setup: Setup, lr: float, blocks: torch.Tensor) -> dict:
    """One pre-tuning run at ``lr`` with a checkpoint every ``pretune_steps / pretune_checks`` steps, each scored on
    the val blocks; the best checkpoint by the LM term (``pretune/lr<lr>/scores.json``, reused)."""
    run = setup.out / "pretune" / f"lr{lr:g}"
    if (done := _json(run / "scores.json")) is not None:
        return done
    every = max(1, setup.pretune_steps // setup.pretune_checks)
    opts = [*_corpus_opts(setup, run, setup.pretune_steps, lr), "TRAIN.SAVE_STEPS", str(every),
            "TRAIN.SAVE_TOTAL_LIMIT", str(setup.pretune_checks + 1)]  # fmt: skip
    results = train(load_config("", opts, defaults=PRETUNE_DEFAULTS))
    curve = {}
    for step in range(every, setup.pretune_steps + 1, every):
        folder = run / f"checkpoint-{step}"
        if not folder.is_dir():
            print(f"pre-tuning: {folder} was not kept (a run made with a lower TRAIN.SAVE_TOTAL_LIMIT)", flush=True)
            continue
        curve[step] = pretune_val_losses(setup, folder, blocks)
        print(f"pre-tuning lr {lr:g} step {step}: val {curve[step]}", flush=True)
    best = min(curve, key=lambda s: curve[s]["lm"])
    done = {"curve": curve, "best_step": best, "lm": curve[best]["lm"], "failed": failed_run(read_metrics(run)),
            "weights": str(run / f"checkpoint-{best}"), "seconds": results.get("seconds")}  # fmt: skip
    _write(run / "scores.json", done)
    return done


def pretune(setup: Setup, tokenizer) -> dict:
    """Pre-tunes at each lr of the grid (grown past a winning edge, ``runkit.lr_grid``: failed runs never win),
    chooses the lr and checkpoint with the lowest val LM loss, and scores the bare model and the fresh path on
    the same blocks. Result (``pretune/choice.json``) is reused."""
    choice_path = setup.out / "pretune" / "choice.json"
    if (done := _json(choice_path)) is not None:
        return done
    blocks = val_blocks(setup, tokenizer)
    runs: dict[float, dict] = {}

    def lm_losses(lrs: list[float]) -> dict[float, float | None]:
        for lr in lrs:
            runs.setdefault(lr, pretune_run(setup, lr, blocks))
        return {lr: None if runs[lr]["failed"] else runs[lr]["lm"] for lr in lrs}

    grown = MAX_EXTENSIONS if len(setup.pretune_lrs) > 1 else 0
    grid = interior_grid(lm_losses, setup.pretune_lrs, higher_is_better=False, max_extensions=grown)
    lr = grid.best if grid.best is not None else min(runs, key=lambda r: runs[r]["lm"])
    fresh = pretune_val_losses(setup, None, blocks)
    chosen = runs[lr]
    done = {
        "bare_lm": bare_val_loss(setup, blocks),
        "fresh": fresh,
        "lr": lr,
        "lrs": {
            f"{r:g}": {"lm": v["lm"], "step": v["best_step"], "failed": v["failed"]} for r, v in sorted(runs.items())
        },
        "lr_chosen_on_val": len(setup.pretune_lrs) > 1,
        "at_edge": bool(grown) and grid.at_edge,
        "curve": {0: fresh, **chosen["curve"]},
        "chosen_step": chosen["best_step"],
        "weights": chosen["weights"],
        "tokens": chosen["best_step"] * 4 * setup.block_size,
        "beats_fresh": chosen["lm"] < fresh["lm"],
        "seconds": sum(v["seconds"] or 0.0 for v in runs.values()),
    }
    _write(choice_path, done)
    return _json(choice_path)  # as a resumed run reads it (step keys are strings)


def lora_corpus_model(setup: Setup, steps: int, lr: float) -> Path:
    """The base model after LoRA (rank 4) on the same corpus for the same steps, lr, batch and blocks, merged."""
    target = setup.out / "lora_corpus" / "merged"
    if (target / "config.json").is_file():
        return target
    run = setup.out / "lora_corpus" / "run"
    opts = [*_corpus_opts(setup, run, steps, lr), "MODEL.TRANSFER_TYPE", "lora", "MODEL.LORA.RANK", "4",
            "MODEL.LORA.ALPHA", "4.0", "TRAIN.SAVE_STRATEGY", "no"]  # fmt: skip
    cfg = load_config("", opts, defaults=PRETUNE_DEFAULTS)  # the same recipe; MODEL.TOAST.* unused by LoRA
    train(cfg)
    from peft import PeftModel

    merged = PeftModel.from_pretrained(load_base_model(cfg), str(run)).merge_and_unload()
    partial = target.with_name("merged.partial")
    merged.save_pretrained(partial)
    build_tokenizer(cfg).save_pretrained(partial)
    partial.rename(target)
    return target


# ---------------------------------------------------------------------------------------------------
# 3. tuning, the lr grid, scoring
# ---------------------------------------------------------------------------------------------------


def run_folder(setup: Setup, method: str, lr: float, steps: int, seed: int) -> Path:
    return setup.out / "runs" / method / f"lr{lr:g}_steps{steps}_seed{seed}"


def tune_cfg(setup: Setup, method: str, lr: float, steps: int, seed: int, paths: dict):
    spec = METHODS[method]
    model = paths["lora_corpus"] if spec.source_stage else setup.model
    opts = [
        "MODEL.NAME_OR_PATH", str(model), "MODEL.DTYPE", "float32", "SEED", str(seed), *spec.overrides,
        "DATA.FORMAT", "alpaca", "DATA.PATH", str(setup.out / "data" / "train_alpaca.json"), "DATA.MAX_LENGTH", "192",
        "DATA.EVAL_FRACTION", "0.0", "TRAIN.MAX_STEPS", str(steps), "TRAIN.PER_DEVICE_TRAIN_BATCH_SIZE",
        str(setup.batch), "TRAIN.LEARNING_RATE", str(lr), "TRAIN.WEIGHT_DECAY", "0.0", "TRAIN.WARMUP_STEPS", "0.1",
        "TRAIN.LR_SCHEDULER_TYPE", "cosine", "TRAIN.LOGGING_STEPS", str(max(1, steps // 5)),
        "TRAIN.SAVE_STRATEGY", "no", "TRAIN.USE_CPU", "True",
        "OUTPUT_DIR", str(run_folder(setup, method, lr, steps, seed)),
    ]  # fmt: skip
    if spec.pretuned:
        opts += ["MODEL.TOPDOWN_WEIGHTS", paths["pretuned"]]
    return load_config("", opts)


def load_tuned(cfg, run: Path):
    """The finished run, loaded as its method's registration says (``language_generation.trained_run``)."""
    return load_model(cfg, run)


def trained_scores(setup: Setup, method, lr, steps, seed, paths, splits, tokenizer, split: str) -> dict:
    """Trains (or finds) the run and scores it on ``split`` (``val``: answer loss; ``test``: + exact match)."""
    run = run_folder(setup, method, lr, steps, seed)
    path = run / f"scores_{split}.json"
    if (done := _json(path)) is not None:
        return done
    cfg = tune_cfg(setup, method, lr, steps, seed, paths)
    results = train(cfg)
    model = load_tuned(cfg, run)
    done = {**score(model, tokenizer, splits[split], generate=split == "test"), "train": results}
    _write(path, done)
    return done


def choose_lr(setup: Setup, method: str, paths, splits, tokenizer) -> dict:
    """The grid on val (answer loss per token, first seed, the largest step count), grown past a winning edge
    by the project's shared rule (``runkit.lr_grid``: failed runs never win; every lr failing grows it down)."""
    steps, seed = max(setup.steps), setup.seeds[0]
    grid = list(METHODS[method].lrs)
    if setup.grid_size == 1:
        grid = grid[len(grid) // 2 : len(grid) // 2 + 1]
    losses: dict[float, float] = {}
    failed: dict[float, str] = {}

    def val_losses(lrs: list[float]) -> dict[float, float | None]:
        for lr in lrs:
            if lr not in losses:
                items = trained_scores(setup, method, lr, steps, seed, paths, splits, tokenizer, "val")["items"]
                losses[lr] = sum(i["loss"] for i in items) / sum(i["tokens"] for i in items)
                if why := failed_run(read_metrics(run_folder(setup, method, lr, steps, seed))):
                    failed[lr] = why
                print(f"{method} lr {lr:g}: val answer loss {losses[lr]:.3f} {failed.get(lr, '')}", flush=True)
        return {lr: None if lr in failed else losses[lr] for lr in lrs}

    chosen = interior_grid(
        val_losses, grid, higher_is_better=False, max_extensions=MAX_EXTENSIONS * (setup.grid_size > 1)
    )
    best = chosen.best if chosen.best is not None else min(losses, key=losses.get)  # every lr failed: said below
    return {"lr": best, "val_loss": losses[best], "grid": {f"{k:g}": v for k, v in sorted(losses.items())},
            "failed": {f"{k:g}": v for k, v in sorted(failed.items())}, "every_lr_failed": chosen.every_lr_failed,
            "at_edge": setup.grid_size > 1 and chosen.at_edge, "fixed": setup.grid_size == 1}  # fmt: skip


def start_paths(setup: Setup) -> dict:
    """The runs the pre-tuned and corpus-based methods start from, once the pre-tuning has chosen its step."""
    choice = _json(setup.out / "pretune" / "choice.json")
    paths = {"lora_corpus": setup.out / "lora_corpus" / "merged"}
    return paths | ({"pretuned": choice["weights"]} if choice else {})


def _tokenizer(setup: Setup):
    return build_tokenizer(load_config("", ["MODEL.NAME_OR_PATH", str(setup.model)]))


def pretune_job(setup: Setup) -> dict:
    return pretune(setup, _tokenizer(setup))


def lora_corpus_job(setup: Setup) -> Path:
    choice = _json(setup.out / "pretune" / "choice.json")
    return lora_corpus_model(setup, choice["chosen_step"], choice["lr"])


def lr_job(setup: Setup, method: str) -> dict:
    """The method's lr on val (``choose_lr``), kept in ``runs/<method>/chosen.json`` for its seeds' jobs."""
    chosen = choose_lr(setup, method, start_paths(setup), make_data(setup), _tokenizer(setup))
    _write(setup.out / "runs" / method / "chosen.json", chosen)
    return chosen


def seed_job(setup: Setup, method: str, steps: int, seed: int) -> dict:
    """One seed of the method at its chosen lr, trained for ``steps`` and scored on test."""
    lr = _json(setup.out / "runs" / method / "chosen.json")["lr"]
    return trained_scores(setup, method, lr, steps, seed, start_paths(setup), make_data(setup), _tokenizer(setup),
                          "test")  # fmt: skip


_STAGES = {"pretune": "pre-tuning", "lora": "LoRA on the corpus (control)", "lr": "lr grids on val",
           "test": "seeds on test", "budget": "budget curve"}  # fmt: skip


def _record(setup: Setup):
    """Adds each finished job's seconds to its stage in ``setup.times`` (jobs side by side overlap in time)."""

    def record(name: str, result, seconds: float) -> None:
        stage = _STAGES[name.split()[0]]
        setup.times[stage] = setup.times.get(stage, 0.0) + seconds

    return record


def main_run(setup: Setup) -> dict:
    """Every stage, resumable; returns what the summary needs. Training runs are jobs (``experiments.jobs``), up to
    ``setup.jobs`` at a time: the pre-tuning, the LoRA control after it, each method's lr grid (after the
    run it starts from), each seed after its method's grid; then the budget curve's runs."""
    unknown = [m for m in setup.methods if m not in METHODS]
    if unknown:
        raise ValueError(f"METHODS has {unknown}; choose from {list(METHODS)}")
    setup.out.mkdir(parents=True, exist_ok=True)
    with Stage(setup, "data and corpus"):
        splits = make_data(setup)
        provenance = corpus(setup, splits)
    jobs: dict[str, Job] = {}
    if any(METHODS[m].pretuned or METHODS[m].source_stage for m in setup.methods):
        jobs["pretune"] = Job(pretune_job, (setup,))
    if any(METHODS[m].source_stage for m in setup.methods):
        jobs["lora corpus"] = Job(lora_corpus_job, (setup,), ("pretune",))
    for method in setup.methods:
        spec = METHODS[method]
        after = ("lora corpus",) if spec.source_stage else ("pretune",) if spec.pretuned else ()
        jobs[f"lr {method}"] = Job(lr_job, (setup, method), after)
    for method in setup.methods:
        for seed in setup.seeds:
            jobs[f"test {method} seed{seed}"] = Job(
                seed_job, (setup, method, max(setup.steps), seed), (f"lr {method}",)
            )
    print(f"== {len(jobs)} jobs, {setup.jobs} at a time", flush=True)
    done = run_jobs(jobs, setup.jobs, on_done=_record(setup))
    pretuned = done.get("pretune")
    chosen = {method: done[f"lr {method}"] for method in setup.methods}
    scores = {m: {seed: done[f"test {m} seed{seed}"] for seed in setup.seeds} for m in setup.methods}
    # a pre-tuned path that does not beat the fresh one on val is shown, not compared (the report says so)
    compared = [m for m in setup.methods if not (METHODS[m].pretuned and pretuned and not pretuned["beats_fresh"])]
    toasts = [m for m in compared if METHODS[m].is_toast]
    others = [m for m in compared if not METHODS[m].is_toast]
    best = {
        "toast": min(toasts, key=lambda m: chosen[m]["val_loss"]) if toasts else None,
        "baseline": min(others, key=lambda m: chosen[m]["val_loss"]) if others else None,
    }
    curve = [m for m in best.values() if m]
    budget_jobs = {
        f"budget {m} {steps} seed{seed}": Job(seed_job, (setup, m, steps, seed))
        for m in curve
        for steps in setup.steps
        for seed in setup.seeds
    }
    ran = run_jobs(budget_jobs, setup.jobs, on_done=_record(setup))
    budget = {m: {n: {s: ran[f"budget {m} {n} seed{s}"] for s in setup.seeds} for n in setup.steps} for m in curve}
    failed = {m: {s: why for s in setup.seeds if (why := failed_run(read_metrics(
        run_folder(setup, m, chosen[m]["lr"], max(setup.steps), s))))} for m in setup.methods}  # fmt: skip
    lite = {m: lite_norms(setup, m, chosen[m]["lr"], setup.seeds[0]) for m in setup.methods
            if METHODS[m].pretuned and METHODS[m].transfer == "toast-lite"}  # fmt: skip
    result = {"splits": splits, "provenance": provenance, "pretuned": pretuned, "chosen": chosen,
              "scores": scores, "best": best, "budget": budget, "failed": failed, "lite": lite}  # fmt: skip
    if setup.pretune_lengths:
        result["pretune_curve"] = pretune_curve(setup, result)
    return result


# the methods the pre-tuning curve follows, each with its counterpart without the corpus
CURVE_METHODS = {"toast-pre": "toast-fresh", "lora-corpus": "lora-r4"}


def pretune_curve(setup: Setup, result: dict) -> dict:
    """``{multiple: {"tokens": pre-tuning tokens, "scores": {method: {seed: test scores}}}}`` for each multiple of
    ``pretune_steps`` in ``pretune_lengths``. Multiple 1 is this run's; 0 the counterparts without the corpus
    (this run's where it ran them); every other length a study of its own under ``out/pretune_curve/x<multiple>``
    (the data and corpus linked), with its own pre-tuning, grids and seeds, at the largest step count."""
    followed = {m: base for m, base in CURVE_METHODS.items() if m in setup.methods}
    if not followed:
        raise ValueError(f"pretune_lengths needs one of {list(CURVE_METHODS)} in METHODS")
    curve = {}
    for multiple in setup.pretune_lengths:
        names = followed if multiple == 0 else {m: m for m in followed}
        to_run = [] if multiple == 1 else [n for n in names.values() if multiple != 0 or n not in setup.methods]
        scores = result["scores"]
        if to_run:
            sub = setup.out / "pretune_curve" / f"x{multiple:g}"
            sub.mkdir(parents=True, exist_ok=True)
            for shared in ("data", "corpus"):
                if not (sub / shared).exists():
                    (sub / shared).symlink_to((setup.out / shared).resolve(), target_is_directory=True)
            steps = max(1, round(multiple * setup.pretune_steps))
            length = replace(setup, out=sub, methods=to_run, steps=[max(setup.steps)], pretune_steps=steps,
                             pretune_checks=min(setup.pretune_checks, steps), pretune_lengths=(), times={})  # fmt: skip
            scores = main_run(length)["scores"]
            setup.times["pre-tuning curve"] = setup.times.get("pre-tuning curve", 0.0) + sum(length.times.values())
        curve[f"{multiple:g}"] = {
            "tokens": round(multiple * setup.pretune_steps) * 4 * setup.block_size,  # the run's budget
            "scores": {m: scores[n] for m, n in names.items()},
        }
    return curve


@torch.no_grad()
def lite_norms(setup: Setup, method: str, lr: float, seed: int) -> list[dict]:
    """Per layer, the Frobenius norms of the pre-tuned A_i and B_i (frozen) and of the rank-r updates
    ``scale · b @ a`` the tuning learned on them, in a final run of a TOAST-Lite method (``lite_norms.json``,
    reused). An update far smaller than the weight it adds to cannot undo a pre-tuned path that hurts."""
    run = run_folder(setup, method, lr, max(setup.steps), seed)
    if (done := _json(run / "lite_norms.json")) is not None:
        return done
    model = load_tuned(tune_cfg(setup, method, lr, max(setup.steps), seed, start_paths(setup)), run)
    rows = []
    for layer, decoder in enumerate(model.top_down.decoders):
        row = {"layer": layer}
        for name, linear in (("A", decoder.down), ("B", decoder.to_value)):
            update = linear.lora_scale * linear.lora_b @ linear.lora_a
            row |= {name: float(linear.weight.norm()), f"{name}_update": float(update.norm())}
        rows.append(row)
    _write(run / "lite_norms.json", rows)
    return rows
