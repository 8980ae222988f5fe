"""Image datasets for every registered layout, with early checks and an optional in-memory cache."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset
from yacs.config import CfgNode

from runkit.cli import UserError
from runkit.fingerprint import file_fingerprint, files_fingerprint

from .layouts import Layout, get_layout
from .registry import vtab_task_name
from .splits import Sample, check_files_exist
from .transforms import Normalize, pixel_transform

logger = logging.getLogger(__name__)

SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def _high_bit_depth_to_rgb(image: Image.Image, path: Path) -> Image.Image:
    """16-bit and 32-bit single-channel images scaled to 8 bits (``convert('RGB')`` would clip them at 255)."""
    values = np.asarray(image)
    if image.mode in SIXTEEN_BIT_MODES or (image.mode == "I" and values.min() >= 0 and values.max() <= 65535):
        scaled = values.astype(np.float64) / 65535.0  # 16-bit data (PNG, TIFF), also when Pillow reads it as "I"
    elif image.mode == "F" and values.size and 0.0 <= values.min() and values.max() <= 1.0:
        scaled = values.astype(np.float64)
    else:
        low, high = (values.min(), values.max()) if values.size else (0, 0)
        raise ValueError(
            f"image {path} is {image.mode!r} with values in [{low}, {high}]: expected 16-bit integers or floats "
            "in [0, 1]; convert it to 8-bit RGB"
        )
    gray = np.round(scaled * 255.0).astype(np.uint8)
    return Image.fromarray(np.repeat(gray[..., None], 3, axis=2))


# How load_rgb turns a file into pixels; part of every feature cache's key, so a cache is never reused across rules.
DECODING = "8-bit RGB, EXIF orientation applied, high bit depths scaled"


def load_rgb(path: Path) -> Image.Image:
    """The image as 8-bit RGB, upright (a camera JPEG's EXIF orientation applied, as a photo viewer shows it); high
    bit depths are scaled, anything unreadable names the file. Training, predict and visualize all open images
    here, so they see the same pixels."""
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            if image.mode in (*SIXTEEN_BIT_MODES, "I", "F"):
                return _high_bit_depth_to_rgb(image, path)
            return image.convert("RGB")
    except Exception as err:
        raise OSError(f"cannot read image {path}: {err}") from err


# Images this process has decoded without error, by (path, size, mtime): tune's grid and seed runs share a task's
# images, so each is opened once per process, not once per run.
_VERIFIED: set[tuple[str, int, int]] = set()


def _identity(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path), stat.st_size, stat.st_mtime_ns


def verify_images(paths: list[Path], workers: int | None = None) -> None:
    """Decodes every image (in threads) and lists every one that fails, before any training starts."""
    workers = workers or min(8, os.cpu_count() or 1)
    paths = [p for p in paths if _identity(p) not in _VERIFIED]

    def problem(path: Path) -> str | None:
        try:
            load_rgb(path)
        except OSError as err:
            return str(err.__cause__ or err)
        return None

    with ThreadPoolExecutor(workers) as pool:
        problems = list(pool.map(problem, paths))
    _VERIFIED.update(_identity(p) for p, e in zip(paths, problems) if e is None)
    found = [(p, e) for p, e in zip(paths, problems) if e is not None]
    if found:
        listing = "\n".join(f"  {p}: {e}" for p, e in found[:20])
        more = f"\n  ... ({len(found)} in all)" if len(found) > 20 else ""
        raise ValueError(
            f"{len(found)} of {len(paths)} images cannot be read (DATA.VERIFY_IMAGES opened each one):\n"
            f"{listing}{more}\nremove or replace them (or list only readable files in the splits)"
        )


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
    """The splits of one task, the files they were read from (checksummed in the run record), its class names."""

    name: str
    layout: str
    num_classes: int
    train: ImageDataset
    val: ImageDataset | None
    test: ImageDataset | None
    split_files: dict[str, str] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)  # indexed by label
    preprocessing: dict = field(default_factory=dict)  # what predict and visualize redo: layout, transform, mean/std


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


def task_layout(cfg: CfgNode) -> Layout:
    """The layout of the configured task folder (``DATA.FORMAT``, or detected)."""
    return get_layout(task_folder(cfg), cfg)


def resolve_num_classes(cfg: CfgNode, layout: Layout) -> int:
    """DATA.NUMBER_CLASSES, or the layout's count (registry, class folders); when both exist they must agree."""
    registered = layout.registered_num_classes()
    given = cfg.DATA.NUMBER_CLASSES
    if given > 0 and registered is not None and given != registered:
        raise ValueError(f"DATA.NUMBER_CLASSES={given}, but {cfg.DATA.NAME or layout.folder} has {registered} classes")
    if given <= 0 and registered is None:
        raise ValueError(
            f"DATA.NAME={cfg.DATA.NAME!r} is not a registered task; set DATA.NUMBER_CLASSES for your own task"
        )
    count = given if given > 0 else registered
    if count < 2:
        raise UserError(
            f"{cfg.DATA.NAME or layout.folder} has {count} class: a 1-way softmax scores 100 % whatever it sees; a "
            "classifier needs at least two classes (add a class folder, or check DATA.NUMBER_CLASSES)"
        )
    return count


SPLIT_OVERLAP_LIMIT = 0.05  # share of an evaluation split repeating training images above which a run is refused


def check_split_overlap(samples: dict[str, list[Sample]], train: str, val: str, test: str, allow: bool) -> None:
    """Evaluation images that repeat a training image by content (a copy, or the same file listed twice) make the
    score a memory test: warned with counts, and refused above ``SPLIT_OVERLAP_LIMIT`` unless ``allow``
    (``DATA.ALLOW_SPLIT_OVERLAP``). A val file listed in the training split under its own path is the
    protocol's choice (VTAB's final runs train on train800val200, which holds val200) and is not counted."""
    evaluated = [split for split in dict.fromkeys((val, test)) if split and split != train]
    if not evaluated:
        return
    digests = files_fingerprint(sorted({path for split in (train, *evaluated) for path, _ in samples[split]}))
    train_paths = {path.resolve() for path, _ in samples[train]}
    train_digests = {digests[str(path)] for path in train_paths}
    for split in evaluated:
        repeats = [
            path
            for path, _ in samples[split]
            if digests[str(path.resolve())] in train_digests and not (split == val and path.resolve() in train_paths)
        ]
        if not repeats:
            continue
        share = len(repeats) / len(samples[split])
        line = (
            f"{len(repeats)} of the {len(samples[split])} images of split {split!r} repeat an image of the "
            f"training split {train!r} by content (e.g. {repeats[0]}): a score on them measures memory"
        )
        if share > SPLIT_OVERLAP_LIMIT and not allow:
            raise UserError(
                f"{line}; remove the copies from one of the splits, or set DATA.ALLOW_SPLIT_OVERLAP True to run anyway"
            )
        logger.warning("%s", line)


def _file_digest(path: Path) -> str:
    return file_fingerprint(path)  # memoised content hash (runkit.fingerprint): the same 16 hex digits


def task_num_classes(cfg: CfgNode) -> int:
    """The task's class count, from the config or the layout, before any image is read."""
    return resolve_num_classes(cfg, task_layout(cfg))


def check_split_sizes(sizes: dict[str, int], world: int) -> None:
    """Every process needs at least one image of every split (or DDP trains no step / evaluates nothing)."""
    small = {name: n for name, n in sizes.items() if n < world}
    if small:
        listing = ", ".join(f"{name} has {n}" for name, n in small.items())
        raise ValueError(
            f"splits too small for {world} processes ({listing} image(s)); each process needs at least one image "
            "of every split: use fewer processes or larger splits"
        )


def build_task_data(cfg: CfgNode, mean: tuple[float, ...], std: tuple[float, ...], world: int = 1) -> TaskData:
    """Reads the configured splits; every listed image must exist (and, with DATA.VERIFY_IMAGES, decode)."""
    layout = task_layout(cfg)
    num_classes = resolve_num_classes(cfg, layout)
    names = ["" if n == "none" else n for n in layout.split_names()]
    if not names[0]:
        raise ValueError("DATA.TRAIN_SPLIT cannot be 'none'")
    samples: dict[str, list[Sample]] = {}
    split_files: dict[str, str] = {}
    for split in filter(None, names):
        samples[split] = layout.read(split, num_classes)
        source = layout.split_file(split)
        check_files_exist(samples[split], str(source or layout.folder / split))
        if source is not None and source.is_file():
            split_files[split] = _file_digest(source)
    check_split_sizes({split: len(listed) for split, listed in samples.items()}, world)
    if len({label for _, label in samples[names[0]]}) < 2:
        raise UserError(
            f"the training split {names[0]!r} of {layout.folder} holds images of one label only: a classifier "
            "learns nothing from it (check its label column, or add images of other classes)"
        )
    check_split_overlap(samples, *names, cfg.DATA.ALLOW_SPLIT_OVERLAP)
    if cfg.DATA.VERIFY_IMAGES:
        verify_images(sorted({path for listed in samples.values() for path, _ in listed}))
    crop, normalize = cfg.DATA.CROPSIZE, Normalize(mean, std)

    def dataset(split: str, train: bool) -> ImageDataset | None:
        if not split:
            return None
        mode = layout.train_transform if train and cfg.DATA.AUGMENT else layout.eval_transform
        cache = cfg.DATA.CACHE_IMAGES and mode != "crop_train"
        return ImageDataset(samples[split], pixel_transform(mode, crop), normalize, cache=cache)

    data = TaskData(
        name=cfg.DATA.NAME or layout.folder.name,
        layout=layout.name,
        num_classes=num_classes,
        train=dataset(names[0], train=True),
        val=dataset(names[1], train=False),
        test=dataset(names[2], train=False),
        split_files=split_files,
        classes=layout.class_names(num_classes),
        preprocessing={
            "layout": layout.name,
            "transform": layout.eval_transform,
            "crop": crop,
            "mean": list(mean),
            "std": list(std),
        },
    )
    logger.info(
        "%s (%s layout, %d classes): train %s=%d, val %s=%s, test %s=%s",
        data.name,
        layout.name,
        num_classes,
        names[0],
        len(data.train),
        names[1] or "-",
        len(data.val) if data.val else 0,
        names[2] or "-",
        len(data.test) if data.test else 0,  # fmt: skip
    )
    return data
