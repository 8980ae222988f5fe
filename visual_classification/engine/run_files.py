"""What a run leaves in its OUTPUT_DIR, and the checks that keep runs from overwriting each other.

config.yaml · inputs.json (content hashes of weights and split files) · log.txt · metrics.jsonl · curves.png
· results.json · best/ (adapter) · last.pt (resume checkpoint) · diverged.json (a run stopped by a non-finite
loss) · .lock (held by the live run)
"""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

import torch

from runkit.files import atomic_path, atomic_write_text, read_jsonl, write_failure
from runkit.lock import LOCK, RunLocked, run_lock, wait_for_lock  # noqa: F401  (the run folder's lock, both halves)
from runkit.runs import refuse_other_config, software_record

CONFIG = "config.yaml"
LOG = "log.txt"
METRICS = "metrics.jsonl"
RESULTS = "results.json"
BEST = "best"
LAST = "last.pt"
CURVES = "curves.png"
DIVERGED = "diverged.json"
INPUTS = "inputs.json"  # written by engine.run_inputs

# Files of one attempt at a run; a restart that is not a resume removes them (config.yaml is rewritten).
RUN_FILES = (RESULTS, LAST, METRICS, LOG, CURVES, DIVERGED, INPUTS)


class RunDiverged(FloatingPointError):
    """The run in the folder stopped on a non-finite loss with this config (``diverged.json``)."""


def has_finished_epoch(out: Path) -> bool:
    """Whether the folder holds anything a run produced after training started (an epoch or results)."""
    return any((out / name).is_file() for name in (RESULTS, LAST)) or bool(read_metrics(out))


def check_output_dir(out: Path, config_text: str, overwrite: bool) -> str:
    """``"new"``, ``"resume"``, ``"finished"`` or ``"diverged"`` (``overwrite``: ``"new"`` instead); a folder
    holding another config is refused unless ``overwrite``.

    A folder whose run finished no epoch (it failed on its data, say) counts as empty, whatever its
    config.yaml says, so that the corrected command simply starts.
    """
    saved = out / CONFIG
    if not saved.is_file():
        return "new"
    if saved.read_text(encoding="utf-8") != config_text:
        if has_finished_epoch(out):
            refuse_other_config(out, CONFIG, config_text, overwrite)
        return "new"
    if (out / RESULTS).is_file():
        return "finished"
    if (out / DIVERGED).is_file():
        return "new" if overwrite else "diverged"
    return "resume" if (out / LAST).is_file() else "new"


def start_clean(out: Path) -> None:
    """Removes what an earlier attempt left (its files, best/ and stale temp files): a new run starts empty."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / BEST, ignore_errors=True)
    remove_stale_temp_files(out)


def remove_stale_temp_files(out: Path) -> None:
    """Temp files of atomic writes that a killed process never renamed (``.NAME.XXXX.tmp``)."""
    for folder in (out, out / BEST):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)


def append_metrics(out: Path, record: dict) -> None:
    try:
        with open(out / METRICS, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as err:
        explained = write_failure(err, out / METRICS)
        if explained is None:
            raise
        raise explained from err


def read_metrics(out: Path) -> list[dict]:
    """The run's ``metrics.jsonl`` records (``[]`` before the first epoch)."""
    return read_jsonl(out / METRICS)


def truncate_metrics(out: Path, epochs: int) -> None:
    """Drops lines of epochs that the resumed checkpoint does not cover (a kill between the two writes).

    Epochs are counted from 1 everywhere (metrics.jsonl, results.json, best/adapter_config.json, the log).
    """
    kept = [r for r in read_metrics(out) if r["epoch"] <= epochs]
    write_metrics(out, kept)


def write_metrics(out: Path, records: list[dict]) -> None:
    atomic_write_text(out / METRICS, "".join(json.dumps(r) + "\n" for r in records))


def diverged_error(out: Path) -> RunDiverged:
    """The refusal of a run that diverged before: the recorded error, and how to try again."""
    path = out / DIVERGED
    try:
        why = json.loads(path.read_text(encoding="utf-8"))["error"]
    except (ValueError, KeyError, TypeError) as err:
        why = f"(unreadable record: {err})"
    return RunDiverged(
        f"{out} holds a run that diverged with this config ({path}): {why}. It would diverge again (seeded): "
        "change the config, or pass --overwrite to try again"
    )


def write_json(path: Path, payload: dict) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def save_checkpoint(path: Path, payload: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict:
    """A run's ``last.pt``; one torch cannot read is an error naming it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        why = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"cannot resume from {path}: not a checkpoint torch can read ({why}); delete it to start the run again"
        ) from err
    if not isinstance(state, dict):
        raise ValueError(f"cannot resume from {path}: it holds a {type(state).__name__}, not a run's checkpoint")
    return state


def run_record(split_files: dict[str, str], device: torch.device) -> dict:
    """Versions, code commit, device and split-file checksums: enough to tell later what produced a number."""
    return {
        **software_record(("torch", "torchvision", "timm", "peft", "safetensors", "yacs", "numpy")),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "split_sha256_16": split_files,
    }
