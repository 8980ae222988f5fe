"""FGVC (the VPT release): ``{train,val,test}.json`` mapping ``relative/path`` to a class id; resize and crop."""

from __future__ import annotations

from pathlib import Path

from ..registry import FGVC_DATASETS
from ..splits import Sample, fgvc_label_map, read_fgvc_split
from .base import Layout, register_layout


@register_layout
class FgvcLayout(Layout):
    name = "fgvc"
    expects = "FGVC json splits (train.json, val.json, test.json)"
    detect_order = 1

    _label_map: dict | None = None

    @classmethod
    def detect(cls, folder: Path) -> bool:
        return (folder / "train.json").is_file()

    def registered_num_classes(self) -> int | None:
        known = FGVC_DATASETS.get(self.cfg.DATA.NAME)
        return known.num_classes if known else None

    def label_map(self, num_classes: int) -> dict:
        """Contiguous labels from the training split's sorted class ids, shared by every split (read once)."""
        if self._label_map is None:
            self._label_map = fgvc_label_map(self.split_file(self.split_names()[0]), num_classes)
        return self._label_map

    def class_names(self, num_classes: int) -> list[str]:
        return [str(cls) for cls in self.label_map(num_classes)]

    def read(self, split: str, num_classes: int) -> list[Sample]:
        known = FGVC_DATASETS.get(self.cfg.DATA.NAME)
        image_root = self.folder / (known.image_dir if known else "")
        return read_fgvc_split(self.split_file(split), image_root, self.label_map(num_classes))

    def split_file(self, split: str) -> Path:
        return self.folder / f"{split}.json"
