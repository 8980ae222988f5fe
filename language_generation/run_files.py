"""What a language run leaves in its OUTPUT_DIR, and the checks that keep runs from overwriting each other.

config.yaml · log.txt · metrics.jsonl · curves.png · results.json · the adapter (or peft adapter, or model)
· checkpoint-N/ folders the ``Trainer`` writes and resumes from.

A folder that holds a run with another config is refused (unless ``--overwrite``) before anything in it
changes; re-running the same config resumes from the newest *complete* checkpoint (the ones skipped are
named with the reason) or reports the finished run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

from transformers import TrainerCallback
from yacs.config import CfgNode

from runkit.cli import UserError
from runkit.files import append_jsonl, atomic_write_text, read_jsonl, save_figure, write_failure
from runkit.runs import is_main_process, refuse_other_config, setup_logging, software_record

from .config import read_run_config, run_config_text
from .distributed import main_decides
from .methods import method_files, weight_files

logger = logging.getLogger(__name__)

CONFIG = "config.yaml"
LOG = "log.txt"
METRICS = "metrics.jsonl"
RESULTS = "results.json"
CURVES = "curves.png"
TRAINER_STATE = "trainer_state.json"
INPUTS = "inputs.json"  # the content hashes of the base model, data and top-down weights (:mod:`.run_inputs`)
TRAINING_ARGS = "training_args.bin"
TOKENIZER_CONFIG = "tokenizer_config.json"  # a run that saved its tokenizer holds this (and the tokenizer's files)
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# what every run writes at the top of OUTPUT_DIR, beside its method's files (run_file_names())
COMMON_FILES = (CONFIG, LOG, METRICS, RESULTS, CURVES, TRAINER_STATE, INPUTS, TRAINING_ARGS)
PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "datasets",
    "accelerate",
    "deepspeed",
    "safetensors",
    "tokenizers",
    "yacs",
)


def run_file_names() -> tuple[str, ...]:
    """What a run writes at the top of OUTPUT_DIR (removed by --overwrite, with the checkpoint folders): the
    common files and every registered method's (:func:`.methods.method_files`)."""
    return (*COMMON_FILES, *method_files())


# ---------------------------------------------------------------------------------------------------
# The run folder
# ---------------------------------------------------------------------------------------------------


def check_output_dir(out: Path, config_text: str, overwrite: bool) -> str:
    """``"new"``, ``"resume"`` or ``"finished"``; a folder holding another config is refused unless ``overwrite``
    (which then removes that run's files and checkpoints)."""
    if not (out / CONFIG).is_file():
        return "new"
    if nothing_trained(out) and not same_run_config(out / CONFIG, config_text):
        logger.info("%s holds a run that trained nothing (it stopped before its first checkpoint): replacing it", out)
        clear_run(out)
        return "new"
    if same_run_config(out / CONFIG, config_text):
        return "finished" if (out / RESULTS).is_file() else "resume"
    if refuse_other_config(out, CONFIG, config_text, overwrite):
        clear_run(out)
        return "new"
    return "finished" if (out / RESULTS).is_file() else "resume"


def same_run_config(saved: Path, config_text: str) -> bool:
    """Whether the run config in ``saved`` is ``config_text`` once both are written the same way (a file a
    run wrote with another transformers version, or with every ``TRAIN.*`` field, is still the same run)."""
    if saved.read_text(encoding="utf-8") == config_text:
        return True
    try:
        return run_config_text(read_run_config(saved)) == config_text
    except (ValueError, KeyError):
        return False


def nothing_trained(out: Path) -> bool:
    """A run folder without results, weights or checkpoints (a run that stopped on its data or config): a
    corrected command may take it over, as the vision side treats such a folder as empty."""
    if (out / RESULTS).is_file() or checkpoint_dirs(out):
        return False
    return not any((out / name).is_file() for name in weight_files())


def clear_run(out: Path, keep: tuple[str, ...] = ()) -> None:
    """Removes a run's files (but ``keep``) and checkpoints from ``out`` (nothing else in it)."""
    for name in run_file_names():
        if name not in keep:
            (out / name).unlink(missing_ok=True)
    for folder in checkpoint_dirs(out):
        shutil.rmtree(folder)


def start_run(cfg: CfgNode, overwrite: bool = False) -> str:
    """Checks OUTPUT_DIR and writes ``config.yaml`` (rank 0 only: the others wait for its answer, or its
    error, so that none reads a folder that is being cleared or written); sends log lines to ``log.txt``
    (rank 0); returns the status of :func:`check_output_dir`."""
    out = Path(cfg.OUTPUT_DIR)
    config_text = run_config_text(cfg)

    def prepare() -> str:
        status = check_output_dir(out, config_text, overwrite) if out.is_dir() else "new"
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / CONFIG, config_text)
        return status

    status = main_decides(prepare)
    main = is_main_process()
    setup_logging(out / LOG if main else None, main)
    logger.info(
        "%s run in %s; config:\n%s", {"new": "new", "resume": "resuming the"}.get(status, status), out, config_text
    )
    return status


def finished_results(out: Path) -> dict:
    """The finished run's ``results.json``; a damaged one is named with the way past it."""
    try:
        results = json.loads((out / RESULTS).read_text(encoding="utf-8"))
    except ValueError as err:
        raise UserError(
            f"{out / RESULTS} is damaged ({err}); delete it and run the command again: the run resumes from its newest "
            "checkpoint and writes it again"
        ) from err
    print(
        f"{out} already holds a finished run with this config (global step {results.get('global_step')}); nothing to do"
    )
    return results


# ---------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------


def checkpoint_dirs(out: Path) -> list[Path]:
    """``checkpoint-N`` folders, newest (highest N) first."""
    if not out.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out.iterdir() if p.is_dir() and (m := CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def damaged_file(path: Path) -> str | None:
    """Why ``path`` cannot be read back (a cut-off safetensors file, bad JSON, a torch file that ``torch.load``
    refuses as the ``Trainer`` loads it on resume), or None. Tensors are not read: safetensors headers only,
    torch files memory-mapped. ``training_args.bin`` (a pickled object the resume never loads) is checked as an
    archive only, never unpickled."""
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt"):
                pass
        elif path.name == TRAINING_ARGS:
            with zipfile.ZipFile(path) as archive:  # torch.save files are zip archives; a cut one has no directory
                archive.infolist()
        elif path.suffix in (".pt", ".pth", ".bin"):
            import torch
            from transformers.trainer_pt_utils import safe_globals

            with safe_globals():  # the numpy types of rng_state.pth, as the Trainer allows them
                torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
    except Exception as err:  # noqa: BLE001  (any failure to read is the answer)
        return f"{path} is damaged ({type(err).__name__}: {err})"
    return None


def incomplete_reason(folder: Path) -> str | None:
    """Why a checkpoint folder cannot be resumed from, or None when it is complete."""
    if not (folder / TRAINER_STATE).is_file():
        return f"no {TRAINER_STATE} (the run was stopped while writing it)"
    weights = weight_files()
    if not any((folder / name).is_file() for name in weights) and not any(folder.glob("global_step*")):
        return "no weights file (" + ", ".join(weights[:3]) + ", ...)"
    for path in sorted(folder.iterdir()):
        if path.is_file():
            problem = damaged_file(path)
            if problem:
                return problem
    return None


def newest_complete_checkpoint(out: Path) -> str | None:
    """The newest checkpoint that can be resumed from; each newer one skipped is logged with its reason."""
    for folder in checkpoint_dirs(out):
        reason = incomplete_reason(folder)
        if reason is None:
            logger.info("resuming from %s", folder)
            return str(folder)
        logger.warning("skipping %s: %s", folder, reason)
    return None


def resume_point(out: Path) -> str | None:
    """The checkpoint to resume from, with ``metrics.jsonl`` cut back to its step (rank 0's job)."""
    last = newest_complete_checkpoint(out)
    truncate_metrics(out, checkpoint_step(last))
    return last


@contextlib.contextmanager
def run_writes(path: Path) -> Iterator[None]:
    """Writes into the run folder (a ``Trainer`` checkpoint, the final model) whose failure for want of space is
    named as such (:func:`runkit.files.write_failure`), not as torch's bare stream error."""
    try:
        yield
    except (OSError, RuntimeError) as err:
        explained = write_failure(err, path)
        if explained is None:
            raise
        raise explained from err


# what loading a run folder reads beside its weights: the tokenizer it saved, a whole model's configs
LOADED_FILES = (TOKENIZER_CONFIG, "tokenizer.json", "special_tokens_map.json", "config.json", "generation_config.json")


def check_run_files(folder: Path) -> None:
    """Stops with the file's name when a saved run's weights, config or tokenizer cannot be read back (a kill
    while the run saved them)."""
    for name in (CONFIG, *method_files(), *LOADED_FILES):
        path = folder / name
        if path.is_file():
            problem = damaged_file(path)
            if problem:
                raise UserError(f"{problem}; the run was stopped while saving it: train again into the folder")


# ---------------------------------------------------------------------------------------------------
# Metrics, curves, results
# ---------------------------------------------------------------------------------------------------


def read_metrics(out: Path) -> list[dict]:
    """The run's ``metrics.jsonl`` records (``[]`` before the first log)."""
    return read_jsonl(Path(out) / METRICS)


def truncate_metrics(out: Path, step: int) -> None:
    """Keeps the lines up to ``step`` (the resumed checkpoint's), dropping those of the interrupted stretch."""
    if (out / METRICS).is_file():
        kept = [r for r in read_metrics(out) if r.get("step", 0) <= step]
        atomic_write_text(out / METRICS, "".join(json.dumps(r) + "\n" for r in kept))


def checkpoint_step(checkpoint: str | None) -> int:
    if checkpoint is None:
        return 0
    return int(json.loads((Path(checkpoint) / TRAINER_STATE).read_text(encoding="utf-8"))["global_step"])


class MetricsCallback(TrainerCallback):
    """Every ``Trainer`` log (train loss, learning rate, grad norm, eval loss) as a line of ``metrics.jsonl``
    and of ``log.txt``; ``curves.png`` at the end."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        append_jsonl(self.out / METRICS, {"step": state.global_step, "epoch": state.epoch, **logs})
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in logs.items())
        logger.info("step %d: %s", state.global_step, shown)

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero and read_metrics(self.out):
            plot_curves(self.out)


def plot_curves(out: Path) -> Path:
    """``curves.png``: train and eval loss, and learning rate, per step, from the run's ``metrics.jsonl``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(out)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for key, label in (("loss", "train"), ("eval_loss", "eval")):
        points = [(r["step"], r[key]) for r in records if key in r]
        if points:
            axes[0].plot(*zip(*points), marker=".", label=label)
    axes[0].set_title("loss")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend()
    lr = [(r["step"], r["learning_rate"]) for r in records if "learning_rate" in r]
    if lr:
        axes[1].plot(*zip(*lr), marker=".")
    axes[1].set_title("learning rate")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, Path(out) / CURVES)


def run_record(cfg: CfgNode) -> dict:
    """Versions, code commit and device, stored in ``results.json`` (the inputs' content is its ``inputs``)."""
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() and not cfg.TRAIN.USE_CPU else "cpu"
    return {**software_record(PACKAGES), "device": device}


def write_results(out: Path, results: dict) -> None:
    atomic_write_text(out / RESULTS, json.dumps(results, indent=2) + "\n")
