"""ImageFolder: ``train/``, ``val/``, ``test/`` with one sub-folder per class (the folder names are the classes).

Without a ``val/`` folder, ``DATA.VAL_FRACTION`` of each class in ``train/`` (chosen with ``SEED``) validates
and the rest trains.
"""

from __future__ import annotations

import logging
import random
from functools import cached_property
from pathlib import Path

from ..splits import Sample, image_folder_classes, read_image_folder_split
from .base import Layout, register_layout

logger = logging.getLogger(__name__)


@register_layout
class ImageFolderLayout(Layout):
    name = "imagefolder"
    expects = "an ImageFolder tree (train/, val/, test/ with class sub-folders)"
    detect_order = 2
    own_data = True

    @classmethod
    def detect(cls, folder: Path) -> bool:
        return (folder / "train").is_dir()

    @cached_property
    def classes(self) -> list[str]:
        return image_folder_classes(self.folder / self.split_names()[0])

    def registered_num_classes(self) -> int | None:
        return len(self.classes)

    def class_names(self, num_classes: int) -> list[str]:
        return list(self.classes)

    def holds_out_val(self) -> bool:
        """Whether validation comes out of the training folder (no val folder, VAL_FRACTION > 0)."""
        val = self.split_names()[1]
        return val != "none" and not (self.folder / val).is_dir() and self.cfg.DATA.VAL_FRACTION > 0

    @cached_property
    def held_out(self) -> tuple[list[Sample], list[Sample]]:
        """(train, val): per class, a seeded VAL_FRACTION share (at least one image of classes with two or more)."""
        train_name, val_name, _ = self.split_names()
        fraction = self.cfg.DATA.VAL_FRACTION
        if not 0 < fraction < 1:
            raise ValueError(f"DATA.VAL_FRACTION must be in (0, 1), got {fraction}")
        samples = read_image_folder_split(self.folder / train_name, self.classes)
        rng = random.Random(self.cfg.SEED)
        train, val = [], []
        for label in range(len(self.classes)):
            members = [s for s in samples if s[1] == label]
            rng.shuffle(members)
            count = max(1, round(fraction * len(members))) if len(members) > 1 else 0
            val += members[:count]
            train += members[count:]
        logger.info(
            "%s has no %s/ folder: %d of its %d images (DATA.VAL_FRACTION %g per class, SEED %d) validate",
            self.folder,
            val_name,
            len(val),
            len(samples),
            fraction,
            self.cfg.SEED,
        )
        return sorted(train), sorted(val)

    def read(self, split: str, num_classes: int) -> list[Sample]:
        train_name, val_name, _ = self.split_names()
        if self.holds_out_val() and split in (train_name, val_name):
            return self.held_out[0 if split == train_name else 1]
        if not (self.folder / split).is_dir() and split != train_name:
            key = "DATA.VAL_SPLIT none (or DATA.VAL_FRACTION > 0)" if split == val_name else "DATA.TEST_SPLIT none"
            raise FileNotFoundError(f"{self.folder / split} is missing; add it with class sub-folders, or set {key}")
        return read_image_folder_split(self.folder / split, self.classes)
