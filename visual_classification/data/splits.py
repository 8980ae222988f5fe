"""Reading split files: VTAB-1k ``.txt`` lists, VPT-style FGVC ``.json`` maps, ImageFolder trees.

Each reader returns ``[(image_path, label), ...]`` and stops at the first problem with a message that
names the file (and line) and what was expected.
"""

from __future__ import annotations

import collections
import json
import logging
import re
import unicodedata
from pathlib import Path

from PIL import Image
from torchvision.datasets.folder import make_dataset

from runkit.cli import UserError

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


def _readable_extensions() -> frozenset[str]:
    """Every file extension of a still-image format Pillow can open (more than torchvision's nine: GIF, JFIF,
    PNM, TGA, ...); formats that hold documents, video or science data, or need outside programs, stay out."""
    Image.init()
    not_still = {"PDF", "EPS", "MPEG", "BUFR", "GRIB", "HDF5", "WMF", "FITS"}
    return frozenset(
        ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN and fmt not in not_still
    )


IMAGE_EXTENSIONS = _readable_extensions()


def is_hidden(path: Path, root: Path) -> bool:
    """Whether the path below ``root`` has a hidden part (``.ipynb_checkpoints/``, macOS ``._x.png``)."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _visible_image(path: Path, root: Path) -> bool:
    """An image file (by extension) whose path below ``root`` has no hidden part."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not is_hidden(path, root)


def report_left_out(where: Path, left_out: list[Path]) -> None:
    """One warning line for the visible files a listing left out (not an image format this project reads), by
    count and extension, so that no class silently loses its ``.heic`` or ``.raw`` photos."""
    if not left_out:
        return
    counts = collections.Counter(p.suffix.lower() or "(no extension)" for p in left_out)
    listing = ", ".join(f"{n} {ext}" for ext, n in counts.most_common())
    logger.warning(
        "%s: left out %d file(s) that are not images this project reads (%s), e.g. %s; convert them to a format "
        "Pillow opens (%s) to use them",
        where,
        len(left_out),
        listing,
        left_out[0],
        ", ".join(sorted(IMAGE_EXTENSIONS & {".jpg", ".png", ".webp", ".tif", ".bmp"})),
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


def class_name(folder_name: str) -> str:
    """A class folder's name in Unicode NFC: a folder written on macOS (NFD) names the same class as on Linux."""
    return unicodedata.normalize("NFC", folder_name)


def _class_folders_by_name(split_dir: Path) -> dict[str, str]:
    """``{class name (NFC): folder name}``; two folders that differ only by Unicode normalisation are refused."""
    by_name: dict[str, str] = {}
    for folder in class_folders(split_dir):
        name = class_name(folder)
        if name in by_name:
            raise UserError(
                f"{split_dir} holds class folders {by_name[name]!r} and {folder!r}, whose names differ only by "
                "Unicode normalisation (NFC/NFD): they name one class; merge them into one folder"
            )
        by_name[name] = folder
    return by_name


def image_folder_classes(train_dir: Path) -> list[str]:
    """The class names (NFC, sorted) of an ImageFolder's ``train/``."""
    if not train_dir.is_dir():
        raise FileNotFoundError(
            f"{train_dir} is missing; an ImageFolder tree holds train/, val/ (and test/) with one sub-folder per class"
        )
    classes = sorted(_class_folders_by_name(train_dir))
    if not classes:
        raise ValueError(f"{train_dir} has no class sub-folders holding images")
    return classes


def read_image_folder_split(split_dir: Path, classes: list[str]) -> list[Sample]:
    """``split_dir/<class>/**/<image>`` (images in nested sub-folders belong to their top-level class folder);
    classes come from ``train/`` so every split shares one label map."""
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{split_dir} is missing; expected one sub-folder per class: {classes[:5]}...")
    folders = _class_folders_by_name(split_dir)
    extra = [folder for name, folder in folders.items() if name not in classes]
    if extra:
        raise ValueError(f"{split_dir} has class folders that train/ lacks: {extra}")
    label_of = {name: label for label, name in enumerate(classes)}
    class_to_idx = {folder: label_of[name] for name, folder in folders.items()}
    left_out: list[Path] = []

    def is_image(path: str) -> bool:
        if _visible_image(Path(path), split_dir):
            return True
        if not is_hidden(Path(path), split_dir):
            left_out.append(Path(path))
        return False

    listed = make_dataset(  # torchvision's listing: recursive, sorted, symlinks followed
        split_dir, class_to_idx, is_valid_file=is_image, allow_empty=True
    )
    report_left_out(split_dir, left_out)
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
