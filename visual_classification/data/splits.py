"""Reading split files: VTAB-1k ``.txt`` lists, VPT-style FGVC ``.json`` maps, ImageFolder trees.

Each reader returns ``[(image_path, label), ...]`` and stops at the first problem with a message that
names the file (and line) and what was expected.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

logger = logging.getLogger(__name__)

Sample = tuple[Path, int]
LABEL = re.compile(r"-?[0-9]+")  # ASCII digits only: str.isdigit() also accepts '¹', which int() refuses


def read_text(path: Path) -> str:
    """A UTF-8 text file (a leading byte-order mark is dropped); other encodings stop naming the file and line."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ValueError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x}); save the file as UTF-8"
        ) from err


def read_json(path: Path):
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: not valid json ({err.msg})") from err


def read_vtab_split(path: Path, num_classes: int) -> list[Sample]:
    """Lines ``relative/path label``; paths are relative to the split file's folder."""
    if not path.is_file():
        raise FileNotFoundError(
            f"split file {path} is missing; a VTAB-1k task folder holds train800.txt, val200.txt, "
            "train800val200.txt and test.txt with lines 'relative/path label'"
        )
    samples = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not LABEL.fullmatch(parts[1]):
            raise ValueError(f"{path}:{number}: expected 'relative/path label', got {line!r}")
        label = int(parts[1])
        _check_label(label, num_classes, f"{path}:{number}")
        samples.append((path.parent / parts[0], label))
    if not samples:
        raise ValueError(f"split file {path} lists no images")
    return samples


def read_fgvc_split(path: Path, image_root: Path, label_map: dict[int, int]) -> list[Sample]:
    """A json map ``{relative_path: class_id}``; class ids are mapped by ``label_map`` (shared by all splits)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"split file {path} is missing; an FGVC folder holds train.json, val.json and test.json "
            "mapping 'relative/path' to a class id"
        )
    mapping = read_json(path)
    if not isinstance(mapping, dict) or not mapping:
        raise ValueError(f"{path}: expected a non-empty json object {{relative_path: class_id}}")
    samples = []
    for rel, cls in mapping.items():
        if cls not in label_map:
            raise ValueError(f"{path}: class id {cls!r} of {rel!r} is not among the training split's classes")
        samples.append((image_root / rel, label_map[cls]))
    return samples


def fgvc_label_map(train_json: Path, num_classes: int) -> dict[int, int]:
    """Contiguous labels from the sorted class ids of the training split, used for every split."""
    if not train_json.is_file():
        raise FileNotFoundError(f"split file {train_json} is missing (it defines the FGVC label map)")
    mapping = read_json(train_json)
    if not isinstance(mapping, dict) or not mapping:
        raise ValueError(f"{train_json}: expected a non-empty json object {{relative_path: class_id}}")
    kinds = {type(v).__name__ for v in mapping.values()}
    if len(kinds) > 1:
        raise ValueError(f"{train_json}: class ids mix types ({sorted(kinds)}); use integers throughout")
    ids = sorted(set(mapping.values()))
    if num_classes > 0 and len(ids) != num_classes:
        raise ValueError(f"{train_json} has {len(ids)} classes, DATA.NUMBER_CLASSES is {num_classes}")
    return {cls: i for i, cls in enumerate(ids)}


def _visible_image(path: Path, root: Path) -> bool:
    """An image file whose path below ``root`` has no hidden part (``.ipynb_checkpoints/``, macOS ``._x.png``)."""
    return path.suffix.lower() in IMG_EXTENSIONS and not any(
        part.startswith(".") for part in path.relative_to(root).parts
    )


def _has_images(folder: Path) -> bool:
    """Whether ``folder`` holds an image at any depth (a class may keep its images in sub-folders)."""
    return any(_visible_image(f, folder) for f in folder.rglob("*") if f.is_file())


def class_folders(split_dir: Path) -> list[str]:
    """Sub-folders that hold images; hidden (``.ipynb_checkpoints``) and empty ones are left out with a log line."""
    kept, ignored = [], []
    for folder in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        if folder.name.startswith(".") or not _has_images(folder):
            ignored.append(folder.name)
        else:
            kept.append(folder.name)
    if ignored:
        logger.info("%s: ignoring %d hidden or empty folder(s): %s", split_dir, len(ignored), ", ".join(ignored))
    return kept


def image_folder_classes(train_dir: Path) -> list[str]:
    if not train_dir.is_dir():
        raise FileNotFoundError(
            f"{train_dir} is missing; an ImageFolder tree holds train/, val/ (and test/) with one sub-folder per class"
        )
    classes = class_folders(train_dir)
    if not classes:
        raise ValueError(f"{train_dir} has no class sub-folders holding images")
    return classes


def read_image_folder_split(split_dir: Path, classes: list[str]) -> list[Sample]:
    """``split_dir/<class>/**/<image>`` (images in nested sub-folders belong to their top-level class folder);
    classes come from ``train/`` so every split shares one label map."""
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{split_dir} is missing; expected one sub-folder per class: {classes[:5]}...")
    extra = [name for name in class_folders(split_dir) if name not in classes]
    if extra:
        raise ValueError(f"{split_dir} has class folders that train/ lacks: {extra}")
    class_to_idx = {cls: label for label, cls in enumerate(classes)}
    listed = make_dataset(  # torchvision's listing: recursive, sorted, symlinks followed
        split_dir,
        class_to_idx,
        is_valid_file=lambda path: _visible_image(Path(path), split_dir),
        allow_empty=True,
    )
    samples = [(Path(path), label) for path, label in listed]
    if not samples:
        raise ValueError(f"{split_dir} holds no images")
    return samples


def _check_label(label: int, num_classes: int, where: str) -> None:
    if not 0 <= label < num_classes:
        raise ValueError(f"{where}: label {label} is outside [0, {num_classes}) (DATA.NUMBER_CLASSES={num_classes})")


def check_files_exist(samples: list[Sample], source: str) -> None:
    missing = [str(p) for p, _ in samples if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} image(s) listed in {source} do not exist, e.g. {missing[:3]}")
