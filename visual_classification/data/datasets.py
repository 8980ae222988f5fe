"""Image datasets for the three layouts, with early checks and an optional in-memory cache."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from yacs.config import CfgNode

from .registry import FGVC_DATASETS, VTAB_TASKS, vtab_task_name
from .splits import (
    Sample,
    check_files_exist,
    fgvc_label_map,
    image_folder_classes,
    read_fgvc_split,
    read_image_folder_split,
    read_vtab_split,
)
from .transforms import Normalize, pixel_transform

logger = logging.getLogger(__name__)

# Split names each layout uses by default: (train, val, test).
DEFAULT_SPLITS = {
    "vtab": ("train800val200", "val200", "test"),
    "fgvc": ("train", "val", "test"),
    "imagefolder": ("train", "val", "test"),
}


def load_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except Exception as err:
        raise OSError(f"cannot read image {path}: {err}") from err


class ImageDataset(Dataset):
    """``(image, label)`` pairs; with ``cache`` the deterministic pixels are decoded once, up front."""

    def __init__(self, samples: list[Sample], pixels, normalize: Normalize, cache: bool = False) -> None:
        self.samples = samples
        self.pixels = pixels
        self.normalize = normalize
        self.cached: list[torch.Tensor] | None = None
        if cache:
            self.cached = [self.pixels(load_rgb(path)) for path, _ in samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        pixels = self.cached[index] if self.cached is not None else self.pixels(load_rgb(path))
        return self.normalize(pixels), label

    @property
    def labels(self) -> list[int]:
        return [label for _, label in self.samples]


@dataclass
class TaskData:
    """The splits of one task, and the files they were read from (checksummed in the run record)."""

    name: str
    layout: str
    num_classes: int
    train: ImageDataset
    val: ImageDataset | None
    test: ImageDataset | None
    split_files: dict[str, str] = field(default_factory=dict)


def task_folder(cfg: CfgNode) -> Path:
    """``DATA.DATAPATH/DATA.NAME`` when that folder exists, else ``DATA.DATAPATH`` itself."""
    if not cfg.DATA.DATAPATH:
        raise ValueError(
            "DATA.DATAPATH is empty: set it to the dataset root (e.g. the folder holding the VTAB-1k tasks)"
        )
    root = Path(cfg.DATA.DATAPATH)
    if not root.is_dir():
        raise FileNotFoundError(f"DATA.DATAPATH={str(root)!r} is not a folder")
    name = vtab_task_name(cfg.DATA.NAME) or cfg.DATA.NAME
    if name and (root / name).is_dir():
        return root / name
    return root


def detect_layout(folder: Path, requested: str) -> str:
    if requested != "auto":
        if requested not in DEFAULT_SPLITS:
            raise ValueError(f"DATA.FORMAT must be auto, {', '.join(DEFAULT_SPLITS)}; got {requested!r}")
        return requested
    if any((folder / f"{s}.txt").is_file() for s in ("train800", "train800val200")):
        return "vtab"
    if (folder / "train.json").is_file():
        return "fgvc"
    if (folder / "train").is_dir():
        return "imagefolder"
    raise FileNotFoundError(
        f"{folder} is not a dataset folder in a known layout: expected VTAB-1k split files "
        "(train800.txt, val200.txt, train800val200.txt, test.txt), FGVC json splits (train.json, val.json, "
        "test.json) or an ImageFolder tree (train/, val/, test/ with class sub-folders)"
    )


def resolve_num_classes(cfg: CfgNode, layout: str, folder: Path) -> int:
    """DATA.NUMBER_CLASSES, or the registry's count for a registered VTAB/FGVC task; they must agree."""
    registered = None
    vtab = vtab_task_name(cfg.DATA.NAME)
    if layout == "vtab" and vtab:
        registered = VTAB_TASKS[vtab].num_classes
    elif layout == "fgvc" and cfg.DATA.NAME in FGVC_DATASETS:
        registered = FGVC_DATASETS[cfg.DATA.NAME].num_classes
    elif layout == "imagefolder":
        registered = len(image_folder_classes(folder / "train"))
    given = cfg.DATA.NUMBER_CLASSES
    if given > 0 and registered is not None and given != registered:
        raise ValueError(f"DATA.NUMBER_CLASSES={given}, but {cfg.DATA.NAME or folder} has {registered} classes")
    if given <= 0 and registered is None:
        raise ValueError(
            f"DATA.NAME={cfg.DATA.NAME!r} is not a registered task; set DATA.NUMBER_CLASSES for your own task"
        )
    return given if given > 0 else registered


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def task_num_classes(cfg: CfgNode) -> int:
    """The task's class count, from the config or the registry, before any image is read."""
    folder = task_folder(cfg)
    return resolve_num_classes(cfg, detect_layout(folder, cfg.DATA.FORMAT), folder)


def build_task_data(cfg: CfgNode, mean: tuple[float, ...], std: tuple[float, ...]) -> TaskData:
    """Reads the configured splits; every listed image must exist and every label fit the class count."""
    folder = task_folder(cfg)
    layout = detect_layout(folder, cfg.DATA.FORMAT)
    num_classes = resolve_num_classes(cfg, layout, folder)
    defaults = DEFAULT_SPLITS[layout]
    given = (cfg.DATA.TRAIN_SPLIT, cfg.DATA.VAL_SPLIT, cfg.DATA.TEST_SPLIT)
    names = ["" if g == "none" else (g or d) for g, d in zip(given, defaults)]
    if not names[0]:
        raise ValueError("DATA.TRAIN_SPLIT cannot be 'none'")
    crop, normalize = cfg.DATA.CROPSIZE, Normalize(mean, std)
    split_files: dict[str, str] = {}
    if layout == "fgvc":
        image_root = folder / (FGVC_DATASETS[cfg.DATA.NAME].image_dir if cfg.DATA.NAME in FGVC_DATASETS else "")
        label_map = fgvc_label_map(folder / f"{names[0]}.json", num_classes)
    if layout == "imagefolder":
        classes = image_folder_classes(folder / "train")

    def read(split: str) -> list[Sample]:
        if layout == "vtab":
            path = folder / f"{split}.txt"
            samples = read_vtab_split(path, num_classes)
        elif layout == "fgvc":
            path = folder / f"{split}.json"
            samples = read_fgvc_split(path, image_root, label_map)
        else:
            path = folder / split
            samples = read_image_folder_split(path, classes)
        check_files_exist(samples, str(path))
        if path.is_file():
            split_files[split] = _file_digest(path)
        return samples

    def dataset(split: str, train: bool) -> ImageDataset | None:
        if not split:
            return None
        mode = "resize" if layout == "vtab" else ("crop_train" if train else "crop_eval")
        cache = cfg.DATA.CACHE_IMAGES and mode != "crop_train"
        return ImageDataset(read(split), pixel_transform(mode, crop), normalize, cache=cache)

    data = TaskData(
        name=cfg.DATA.NAME or folder.name,
        layout=layout,
        num_classes=num_classes,
        train=dataset(names[0], train=True),
        val=dataset(names[1], train=False),
        test=dataset(names[2], train=False),
        split_files=split_files,
    )
    logger.info(
        "%s (%s layout, %d classes): train %s=%d, val %s=%s, test %s=%s",
        data.name,
        layout,
        num_classes,
        names[0],
        len(data.train),
        names[1],
        len(data.val) if data.val else 0,
        names[2] or "-",
        len(data.test) if data.test else 0,  # fmt: skip
    )
    return data
