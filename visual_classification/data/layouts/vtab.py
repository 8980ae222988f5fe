"""VTAB-1k: ``<task>/{train800,val200,train800val200,test}.txt`` listing ``relative/path label``; plain resize."""

from __future__ import annotations

from pathlib import Path

from ..registry import VTAB_TASKS, vtab_task_name
from ..splits import Sample, read_vtab_split
from .base import Layout, register_layout


@register_layout
class VtabLayout(Layout):
    name = "vtab"
    expects = "VTAB-1k split files (train800.txt, val200.txt, train800val200.txt, test.txt)"
    splits = ("train800val200", "val200", "test")
    tuning_splits = ("train800", "val200", "none")
    final_splits = ("train800val200", "val200", "test")
    detect_order = 0  # split files before folders
    train_transform = eval_transform = "resize"  # no augmentation, aspect ratio not kept (the original)

    @classmethod
    def detect(cls, folder: Path) -> bool:
        return any((folder / f"{s}.txt").is_file() for s in ("train800", "train800val200"))

    def registered_num_classes(self) -> int | None:
        task = vtab_task_name(self.cfg.DATA.NAME)
        return VTAB_TASKS[task].num_classes if task else None

    def read(self, split: str, num_classes: int) -> list[Sample]:
        return read_vtab_split(self.split_file(split), num_classes)

    def split_file(self, split: str) -> Path:
        return self.folder / f"{split}.txt"
