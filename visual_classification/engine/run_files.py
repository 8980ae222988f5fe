"""What a run leaves in its OUTPUT_DIR, and the checks that keep runs from overwriting each other.

config.yaml · log.txt · metrics.jsonl · curves.png · results.json · best/ (adapter) · last.pt (resume checkpoint)
"""

from __future__ import annotations

import json
import logging
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

from toast.files import atomic_path, atomic_write_text

CONFIG = "config.yaml"
LOG = "log.txt"
METRICS = "metrics.jsonl"
RESULTS = "results.json"
BEST = "best"
LAST = "last.pt"
CURVES = "curves.png"


def check_output_dir(out: Path, config_text: str, overwrite: bool) -> str:
    """``"new"``, ``"resume"`` or ``"finished"``; a folder holding another config is refused unless ``overwrite``."""
    saved = out / CONFIG
    if not saved.is_file():
        return "new"
    if saved.read_text(encoding="utf-8") != config_text:
        if not overwrite:
            raise FileExistsError(
                f"OUTPUT_DIR {out} holds a run with a different config ({saved}); choose another OUTPUT_DIR "
                "or pass --overwrite to replace it"
            )
        for name in (RESULTS, LAST, METRICS, LOG):
            (out / name).unlink(missing_ok=True)
        return "new"
    if (out / RESULTS).is_file():
        return "finished"
    return "resume" if (out / LAST).is_file() else "new"


def setup_logging(out: Path, main: bool) -> None:
    """Log lines to stdout and log.txt on rank 0; warnings only elsewhere."""
    root = logging.getLogger()
    root.setLevel(logging.INFO if main else logging.WARNING)
    for handler in list(root.handlers):
        if getattr(handler, "_toast_run", False):
            root.removeHandler(handler)
    fmt = logging.Formatter("[%(asctime)s %(name)s] %(message)s", "%m/%d %H:%M:%S")
    handlers = [logging.StreamHandler(sys.stdout)]
    if main:
        handlers.append(logging.FileHandler(out / LOG, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(fmt)
        handler._toast_run = True
        root.addHandler(handler)


def append_metrics(out: Path, record: dict) -> None:
    with open(out / METRICS, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def read_metrics(out: Path) -> list[dict]:
    path = out / METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def truncate_metrics(out: Path, epochs: int) -> None:
    """Drops lines of epochs that the resumed checkpoint does not cover (a kill between the two writes)."""
    kept = [r for r in read_metrics(out) if r["epoch"] < epochs]
    atomic_write_text(out / METRICS, "".join(json.dumps(r) + "\n" for r in kept))


def write_json(path: Path, payload: dict) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def save_checkpoint(path: Path, payload: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot resume from {path}: {err}; delete it to start the run again") from err


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def run_record(split_files: dict[str, str], device: torch.device) -> dict:
    """Versions, code commit and split-file checksums: enough to tell later what produced a number."""
    versions = {}
    for package in ("torch", "torchvision", "timm", "peft", "safetensors", "yacs", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "packages": versions,
        "git_commit": git_commit(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "split_sha256_16": split_files,
    }
