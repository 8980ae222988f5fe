"""Writes tiny datasets in the real on-disk layouts (VTAB-1k split files, FGVC json, ImageFolder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (220, 220, 30), (200, 30, 200)]


def write_image(path: Path, label: int, rng: np.random.Generator, size: int = 20) -> None:
    """A noisy image whose dominant colour is the label: learnable in a few steps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    base = np.array(COLOURS[label % len(COLOURS)], dtype=np.float32)
    pixels = np.clip(base + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)


def write_vtab_task(
    root: Path, name: str = "toy", classes: int = 3, per_split: dict | None = None, seed: int = 0
) -> Path:
    """``root/name/{train800,val200,train800val200,test}.txt`` with images under ``root/name/images``."""
    rng = np.random.default_rng(seed)
    per_split = per_split or {"train800": 12, "val200": 6, "test": 6}
    task = root / name
    lines: dict[str, list[str]] = {}
    for split, count in per_split.items():
        lines[split] = []
        for i in range(count):
            label = i % classes
            rel = f"images/{split}_{i}.png"
            write_image(task / rel, label, rng)
            lines[split].append(f"{rel} {label}")
    lines["train800val200"] = lines["train800"] + lines["val200"]
    for split, rows in lines.items():
        (task / f"{split}.txt").write_text("\n".join(rows) + "\n")
    return task


def write_fgvc(root: Path, classes: tuple[int, ...] = (4, 9, 17), seed: int = 0) -> Path:
    """VPT-style json splits with non-contiguous class ids; val lacks one class on purpose."""
    rng = np.random.default_rng(seed)
    splits = {"train": list(classes) * 3, "val": list(classes[:-1]), "test": list(classes) * 2}
    for split, ids in splits.items():
        mapping = {}
        for i, cls in enumerate(ids):
            rel = f"{split}/{i}.jpg"
            write_image(root / rel, classes.index(cls), rng, size=40)
            mapping[rel] = cls
        (root / f"{split}.json").write_text(json.dumps(mapping))
    return root


def write_image_folder(root: Path, classes=("cat", "dog"), per_class: int = 3, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split in ("train", "val", "test"):
        for label, cls in enumerate(classes):
            for i in range(per_class):
                write_image(root / split / cls / f"{i}.png", label, rng)
    return root
