"""The inputs a language run was trained on, by content (base model, data, pre-tuned top-down weights): recorded
in the run folder's ``inputs.json`` when training starts, checked on resume and by ``generate``, so a run is never
continued or used on inputs that changed behind the same names. The vision half keeps its own in
``visual_classification/engine/run_inputs.py``.

Content is compared through :mod:`runkit.fingerprint` (a hash per file, memoised by path, size, mtime, ctime
and inode), so a 14 GB base model is hashed once, and a file rewritten behind the same path is still caught.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from yacs.config import CfgNode

from runkit.cli import UserError
from runkit.files import atomic_write_text, read_json_record
from runkit.fingerprint import changed_files, file_fingerprint
from toast.adapter import ADAPTER_CONFIG, ADAPTER_WEIGHTS

from .records import data_files
from .run_files import INPUTS

logger = logging.getLogger(__name__)

# the files of a model folder that from_pretrained (model and tokenizer) reads; not READMEs or other formats
MODEL_SUFFIXES = (".json", ".safetensors", ".bin", ".model", ".txt", ".tiktoken", ".py")
TOP_DOWN_FILES = (ADAPTER_WEIGHTS, ADAPTER_CONFIG)  # what an adapter folder is read from


class InputsChanged(UserError):
    """A run's base model, data or top-down weights differ by content from what it was trained on."""


def _hashes(files: list[Path], root: Path | None) -> dict[str, str]:
    """``{name: content hash}``, names relative to ``root`` (so that a moved or copied folder compares equal)."""
    return {str(f.relative_to(root)) if root else f.name: file_fingerprint(f) for f in files}


def model_files(name_or_path: str) -> tuple[Path | None, list[Path]]:
    """The model folder and the files of it that loading reads: a local folder, or the hub cache's snapshot of
    a hub name (no download; ``(None, [])`` when it is not cached)."""
    folder = Path(name_or_path)
    if not folder.is_dir():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(name_or_path, "config.json")
        except Exception:  # noqa: BLE001  (not a valid hub name either: nothing to fingerprint)
            cached = None
        if not isinstance(cached, str):
            return None, []
        folder = Path(cached).parent
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix in MODEL_SUFFIXES
    )
    return folder, files


def model_fingerprint(name_or_path: str) -> dict:
    """``{"source": MODEL.NAME_OR_PATH, "files": {name: hash}}`` (empty files: a hub model not yet cached)."""
    folder, files = model_files(name_or_path)
    return {"source": name_or_path, "files": _hashes(files, folder)}


def data_fingerprint(path_text: str) -> dict:
    """``{"source": DATA.PATH, "files": {name: hash}}``; a hub dataset has no files to hash."""
    files = data_files(path_text)
    root = Path(path_text) if Path(path_text).is_dir() else None
    return {"source": path_text, "files": _hashes(files, root)}


def top_down_fingerprint(path_text: str) -> dict:
    path = Path(path_text)
    files = [path / name for name in TOP_DOWN_FILES if (path / name).is_file()] if path.is_dir() else [path]
    return {"source": path_text, "files": _hashes(files, path if path.is_dir() else None)}


def run_inputs(cfg: CfgNode) -> dict:
    """What a run reads, by content: the base model, the data and (when given) the pre-tuned top-down path."""
    inputs = {"base_model": model_fingerprint(cfg.MODEL.NAME_OR_PATH), "data": data_fingerprint(cfg.DATA.PATH)}
    if cfg.MODEL.TOPDOWN_WEIGHTS:
        inputs["topdown_weights"] = top_down_fingerprint(cfg.MODEL.TOPDOWN_WEIGHTS)
    return inputs


def read_inputs(folder: Path) -> dict | None:
    return read_json_record(Path(folder) / INPUTS)


def record_inputs(out: Path, cfg: CfgNode) -> dict:
    """Writes ``inputs.json`` (a new run, before training) and returns it."""
    inputs = run_inputs(cfg)
    atomic_write_text(Path(out) / INPUTS, json.dumps(inputs, indent=2, sort_keys=True) + "\n")
    return inputs


_LABELS = {"base_model": "MODEL.NAME_OR_PATH", "data": "DATA.PATH", "topdown_weights": "MODEL.TOPDOWN_WEIGHTS"}


def input_changes(recorded: dict, current: dict, parts=tuple(_LABELS)) -> list[str]:
    """What differs, one phrase per file (``DATA.PATH data.json: changed``); parts whose files could not be
    listed on either side (a hub name) are compared by name only."""
    changes = []
    for part in parts:
        old, new = recorded.get(part), current.get(part)
        if old is None and new is None:
            continue
        if old is None or new is None:
            changes.append(f"{_LABELS[part]}: {'added' if old is None else 'removed'}")
            continue
        if not old["files"] or not new["files"]:
            if old["source"] != new["source"]:
                changes.append(f"{_LABELS[part]}: {old['source']!r} became {new['source']!r}")
            continue
        for name in changed_files(old["files"], new["files"]):
            state = "new" if name not in old["files"] else "gone" if name not in new["files"] else "changed"
            changes.append(f"{_LABELS[part]} {new['source']}: {name} {state}")
    return changes


def check_run_inputs(out: Path, cfg: CfgNode) -> None:
    """Refuses to resume (or to report as finished) a run whose inputs changed by content since it started;
    a run folder without ``inputs.json`` is let through with a warning."""
    recorded = read_inputs(out)
    if recorded is None:
        logger.warning("%s has no %s: its inputs cannot be checked", out, INPUTS)
        return
    changes = input_changes(recorded, run_inputs(cfg))
    if changes:
        raise InputsChanged(
            f"OUTPUT_DIR {out} was trained on other inputs than the ones the config names now ("
            + "; ".join(changes)
            + f"; recorded in {Path(out) / INPUTS}). Restore them, choose another OUTPUT_DIR, or pass --overwrite "
            "to train again from scratch"
        )


def check_adapter_base(run_dir: Path, cfg: CfgNode) -> bool:
    """True when ``MODEL.NAME_OR_PATH`` holds, by content, the base model the run in ``run_dir`` was trained on
    (whatever its path); raises naming the files that differ. False when it cannot tell (a run folder without
    ``inputs.json``, or a hub model not in the cache): the adapter's own check of the model's name applies."""
    recorded = read_inputs(run_dir)
    if recorded is None:
        logger.warning("%s has no %s: the base model is checked by name only", run_dir, INPUTS)
        return False
    current = {"base_model": model_fingerprint(cfg.MODEL.NAME_OR_PATH)}
    if not recorded["base_model"]["files"] or not current["base_model"]["files"]:
        logger.warning("the base model %r cannot be read from disk: checked by name only", cfg.MODEL.NAME_OR_PATH)
        return False
    changes = input_changes(recorded, current, parts=("base_model",))
    if changes:
        raise InputsChanged(
            f"--adapter {run_dir} was trained on the base model {recorded['base_model']['source']!r}; "
            + "; ".join(changes)
            + " (by content, against "
            + f"{Path(run_dir) / INPUTS}). Give the base model it was trained on (MODEL.NAME_OR_PATH)"
        )
    return True


def check_top_down_base(path_text: str, cfg: CfgNode) -> None:
    """Refuses pre-tuned top-down weights (``MODEL.TOPDOWN_WEIGHTS``, an adapter folder) made on another base model
    than ``MODEL.NAME_OR_PATH``, by content: another model of the same shape would load without a word and steer
    values it never saw. A folder or file that records no base (an original-release file) is let through with a
    warning."""
    folder = Path(path_text)
    recorded = read_json_record(folder / ADAPTER_CONFIG) if folder.is_dir() else None
    theirs = (recorded or {}).get("base_model_files")
    ours = model_fingerprint(cfg.MODEL.NAME_OR_PATH)["files"]
    if not theirs or not ours:
        logger.warning(
            "MODEL.TOPDOWN_WEIGHTS=%r: its base model cannot be compared by content with MODEL.NAME_OR_PATH=%r",
            path_text,
            cfg.MODEL.NAME_OR_PATH,
        )
        return
    changes = changed_files(theirs, ours)
    if changes:
        raise InputsChanged(
            f"MODEL.TOPDOWN_WEIGHTS={path_text!r} was made on the base model {recorded.get('base_model')!r}, which "
            f"differs from MODEL.NAME_OR_PATH={cfg.MODEL.NAME_OR_PATH!r} by content ({', '.join(changes[:5])}"
            f"{' ...' if len(changes) > 5 else ''}; recorded in {folder / ADAPTER_CONFIG}); pre-tune on the base "
            "model you tune, or tune the base the weights were made on"
        )
