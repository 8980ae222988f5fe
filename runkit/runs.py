"""Plumbing both sub-projects' run folders share (standard library only): log lines to the console and
``log.txt``, and the record of what produced a result (package versions, code commit)."""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path


def is_main_process() -> bool:
    """Rank 0 of a torchrun launch, or a plain process: the one that checks, writes and logs. Asked the same way
    on both halves, before the process group starts too (torchrun's ``RANK``); torch is not imported here."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def setup_logging(log_file: Path | None, main: bool = True) -> None:
    """INFO lines to stdout and ``log_file`` on the main process; warnings only elsewhere. Calling it again
    (a second run in one process) replaces the handlers it added before."""
    root = logging.getLogger()
    root.setLevel(logging.INFO if main else logging.WARNING)
    for handler in list(root.handlers):
        if getattr(handler, "_toast_run", False):
            root.removeHandler(handler)
            handler.close()
    fmt = logging.Formatter("[%(asctime)s %(name)s] %(message)s", "%m/%d %H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if main and log_file is not None:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(fmt)
        handler._toast_run = True
        root.addHandler(handler)


def git_commit() -> str | None:
    """The code's commit (``+dirty`` with uncommitted changes), or None outside a git checkout."""
    try:
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions(packages: tuple[str, ...]) -> dict[str, str | None]:
    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def software_record(packages: tuple[str, ...]) -> dict:
    """Python, package versions and code commit: enough to tell later what produced a number."""
    return {"python": platform.python_version(), "packages": package_versions(packages), "git_commit": git_commit()}


def refuse_other_config(out: Path, config_name: str, config_text: str, overwrite: bool) -> bool:
    """True when ``out`` holds a run with another config and ``overwrite`` allows replacing it (the caller
    then removes that run's files); such a folder without ``overwrite`` is refused, naming it."""
    saved = out / config_name
    if not saved.is_file() or saved.read_text(encoding="utf-8") == config_text:
        return False
    if not overwrite:
        raise FileExistsError(
            f"OUTPUT_DIR {out} holds a run with a different config ({saved}); choose another OUTPUT_DIR "
            "or pass --overwrite to replace it"
        )
    return True
