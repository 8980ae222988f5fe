"""What a dataset layout is, and the registry ``train``, ``tune``, ``visualize`` and ``predict`` look layouts up in.

A layout is one file: it says how to recognise its folder, which splits a plain run, a tuning run and a
final run use, how a split is read into ``(path, label)`` samples, its class names, and which transform
its images get. ``detect_order`` decides which layout a folder that fits several gets (split files first).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from yacs.config import CfgNode

from ..splits import Sample
from ..transforms import Mode

Splits = tuple[str, str, str]  # (train, val, test); "none" leaves one out


class Layout:
    """A layout bound to one task folder and config; subclasses fill in the class attributes and methods."""

    name: ClassVar[str]
    expects: ClassVar[str]  # what its folder holds, for the message when no layout matches
    splits: ClassVar[Splits] = ("train", "val", "test")  # a plain run's defaults
    tuning_splits: ClassVar[Splits] = ("train", "val", "none")  # tune's grid runs (no test)
    final_splits: ClassVar[Splits] = ("train", "val", "test")  # tune's seeded final runs
    train_transform: ClassVar[Mode] = "crop_train"  # resize, random crop, flip
    eval_transform: ClassVar[Mode] = "crop_eval"  # resize, centre crop
    detect_order: ClassVar[int] = 100  # lower is tried first by DATA.FORMAT auto
    own_data: ClassVar[bool] = False  # a user's own folder: no paper protocol fixes its recipe (SOLVER.OPTIMIZER auto)

    def __init__(self, folder: Path, cfg: CfgNode) -> None:
        self.folder, self.cfg = folder, cfg

    @classmethod
    def detect(cls, folder: Path) -> bool:
        raise NotImplementedError

    def registered_num_classes(self) -> int | None:
        """The class count the layout knows without ``DATA.NUMBER_CLASSES`` (a registry, the folders), or None."""
        return None

    def class_names(self, num_classes: int) -> list[str]:
        """Names indexed by label (saved with the run as ``results.json``'s ``classes``)."""
        return [str(i) for i in range(num_classes)]

    def read(self, split: str, num_classes: int) -> list[Sample]:
        raise NotImplementedError

    def split_file(self, split: str) -> Path | None:
        """The file that defines ``split`` (checksummed in the run record), if it is one file."""
        return None

    def split_names(self) -> Splits:
        """The configured (train, val, test) split names, the layout's defaults filling the empty ones."""
        given = (self.cfg.DATA.TRAIN_SPLIT, self.cfg.DATA.VAL_SPLIT, self.cfg.DATA.TEST_SPLIT)
        return tuple(g or d for g, d in zip(given, self.splits))


LAYOUTS: dict[str, type[Layout]] = {}


def register_layout(cls: type[Layout]) -> type[Layout]:
    LAYOUTS[cls.name] = cls
    return cls


def get_layout(folder: Path, cfg: CfgNode) -> Layout:
    """``DATA.FORMAT``'s layout, or (``auto``) the first registered layout that recognises ``folder``."""
    requested = cfg.DATA.FORMAT
    if requested != "auto":
        if requested not in LAYOUTS:
            raise ValueError(f"DATA.FORMAT must be auto, {', '.join(LAYOUTS)}; got {requested!r}")
        return LAYOUTS[requested](folder, cfg)
    for cls in sorted(LAYOUTS.values(), key=lambda c: c.detect_order):
        if cls.detect(folder):
            return cls(folder, cfg)
    raise FileNotFoundError(
        f"{folder} is not a dataset folder in a known layout: expected "
        + " or ".join(cls.expects for cls in sorted(LAYOUTS.values(), key=lambda c: c.detect_order))
    )
