"""What a run was trained from, by content: its weights files and the files that define its splits and labels.

``inputs.json`` in the run folder records a content hash (``runkit.fingerprint``, memoised, so a 14 GB file is
hashed once) of ``MODEL.MODEL_ROOT``, ``MODEL.TOPDOWN_WEIGHTS``, ``MODEL.INIT_FROM`` and each split's file (VTAB ``.txt``, FGVC
``.json``) or, for an ImageFolder, its list of images and labels. A run that resumes, a run reported as
finished, and ``predict`` compare it with the files as they are now, so a file replaced behind the same path
(even with the same size and its mtime restored) is named instead of silently used.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from yacs.config import CfgNode

from runkit.files import read_json_record
from runkit.fingerprint import changed_files, files_fingerprint

INPUTS = "inputs.json"
WEIGHT_KEYS = ("MODEL.MODEL_ROOT", "MODEL.TOPDOWN_WEIGHTS", "MODEL.INIT_FROM")
MISSING = "missing"


class InputsChanged(FileExistsError):
    """The run folder holds a run made from other input files than the ones at its paths now."""


def _entry(path: Path | str, digest: str) -> dict[str, str]:
    return {"path": str(path), "sha256_16": digest}


def weights_inputs(cfg: CfgNode) -> dict[str, dict[str, str]]:
    """``{label: {"path", "sha256_16"}}`` for the weights files (a folder: each file, labelled by its name)."""
    out = {}
    for key in WEIGHT_KEYS:
        value = cfg.MODEL[key.split(".", 1)[1]]
        if not value:
            continue
        path = Path(value)
        if not path.exists():
            out[key] = _entry(path, MISSING)
        elif path.is_dir():
            for file, digest in files_fingerprint([path]).items():
                out[f"{key}/{Path(file).relative_to(path.resolve())}"] = _entry(file, digest)
        else:
            out[key] = _entry(path, files_fingerprint([path])[str(path.resolve())])
    return out


def _listing_digest(samples) -> str:
    lines = "\n".join(f"{Path(path).resolve()}\t{label}" for path, label in samples)
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def split_inputs(cfg: CfgNode) -> dict[str, dict[str, str]]:
    """``{"split NAME": {"path", "sha256_16"}}``: the split's file, or (ImageFolder) its image list with labels."""
    from ..data.datasets import resolve_num_classes, task_layout

    layout = task_layout(cfg)
    out = {}
    for split in dict.fromkeys(n for n in layout.split_names() if n and n != "none"):
        source = layout.split_file(split)
        if source is not None:
            digest = files_fingerprint([source])[str(source.resolve())] if source.is_file() else MISSING
            out[f"split {split}"] = _entry(source, digest)
        else:  # labels are the class folders: the list of (image, label) is what defines the split
            samples = layout.read(split, resolve_num_classes(cfg, layout))
            out[f"split {split}"] = _entry(
                f"{layout.folder} ({split}: image list and labels)", _listing_digest(samples)
            )
    return out


def run_inputs(cfg: CfgNode) -> dict[str, dict[str, str]]:
    return {**weights_inputs(cfg), **split_inputs(cfg)}


def write_inputs(out: Path, inputs: dict) -> None:
    from .run_files import write_json

    write_json(out / INPUTS, inputs)


def recorded_inputs(out: Path) -> dict | None:
    """The run's record (every run writes it when it starts), or ``None`` when the folder lacks it."""
    return read_json_record(out / INPUTS)


def changed_inputs(recorded: dict, current: dict) -> list[str]:
    """``"label (path)"`` for every input whose content differs, appeared or vanished."""
    digests = [{k: v["sha256_16"] for k, v in d.items()} for d in (recorded, current)]
    return [f"{label} ({(current.get(label) or recorded[label])['path']})" for label in changed_files(*digests)]


def check_unchanged(out: Path, current: dict, what: str) -> None:
    """Raises :class:`InputsChanged` naming every input of the run in ``out`` that changed by content."""
    recorded = recorded_inputs(out)
    if recorded is None:
        raise InputsChanged(
            f"OUTPUT_DIR {out} holds a {what} run without {INPUTS} (its record of the input files); choose another "
            "OUTPUT_DIR, or pass --overwrite to train again"
        )
    changed = changed_inputs(recorded, current)
    if changed:
        raise InputsChanged(
            f"OUTPUT_DIR {out} holds a {what} run whose inputs changed by content since it started: "
            f"{'; '.join(changed)} ({out / INPUTS} records the hashes it used). Restore the files, choose another "
            "OUTPUT_DIR, or pass --overwrite to train again on the current files"
        )


def check_weights_unchanged(run_dir: Path, cfg: CfgNode) -> None:
    """``predict``/``visualize``: the run's backbone (and top-down) weights are still the files it trained on."""
    recorded = recorded_inputs(run_dir)
    if recorded is None:
        raise FileNotFoundError(
            f"{run_dir / INPUTS} is missing (the run's record of its input files); train the run again"
        )
    recorded = {k: v for k, v in recorded.items() if k.startswith(WEIGHT_KEYS)}
    changed = changed_inputs(recorded, weights_inputs(cfg))
    if changed:
        raise ValueError(
            f"the weights of the run in {run_dir} changed by content since it trained: {'; '.join(changed)} "
            f"({run_dir / INPUTS} records the hashes); its adapter would answer on another backbone. Restore the "
            "file, or train a run on the new one"
        )
