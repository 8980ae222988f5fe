"""A second, non-digit kind of scene for the vision refocusing study (``DOMAIN photos``).

A scene is a small patch of one of ten photographs that ``scikit-image`` ships (the class: which
photograph), at a random place on a texture among four fragments of other patches, as the digit scenes
(:func:`visual_classification.demo.tasks.clutter_scene`) but with photographic content instead of strokes.
Everything is grey, so colour alone does not give the class away. The textures that form the backgrounds
(grass, gravel, brick) are not classes.

No pixel of a photograph appears in two splits: each photograph is cut into vertical bands, one per split,
in proportion to the split's scene count, and a split's patches and fragments are cropped inside its own
band only. ``provenance.json`` records every crop box (photograph, x0, y0, side), labelled and fragment.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from visual_classification.demo.tasks import clutter_scene, gray_to_rgb, package_file, textures

from .digit_tasks import write_task_folder

# Indices 0-4 (the study's default source classes) and 5-9 (target): two disjoint groups of photographs.
PHOTO_CLASSES = (
    "astronaut.png", "camera.png", "coffee.png", "chelsea.png", "rocket.jpg",
    "hubble_deep_field.jpg", "moon.png", "coins.png", "retina.jpg", "ihc.png",
)  # fmt: skip
PATCH = 28  # the labelled patch's side in the scene, as an MNIST digit's
MAX_CROP = 56  # crops of 28-56 px, resized to 28: a little scale variation


def photo(name: str) -> np.ndarray:
    """One of scikit-image's photographs in grey, the scenes' only content."""
    with Image.open(package_file("skimage", f"data/{name}", "scikit-image==0.26.0")) as image:
        return np.asarray(image.convert("L"))


def split_bands(width: int, sizes: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Disjoint column ranges ``[a, b)`` of a photograph, one per split, in proportion to the split's count."""
    total = sum(sizes.values())
    bounds = np.cumsum([0, *sizes.values()]) * width // total
    bands = {split: (int(a), int(b)) for split, a, b in zip(sizes, bounds[:-1], bounds[1:])}
    narrow = {split: b - a for split, (a, b) in bands.items() if b - a < PATCH}
    if narrow:
        raise ValueError(f"split bands narrower than {PATCH} px in a {width}-px photograph: {narrow}; fewer splits")
    return bands


def _crop(image: np.ndarray, band: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    a, b = band
    side = int(rng.integers(PATCH, min(MAX_CROP, b - a, image.shape[0]) + 1))
    x0, y0 = int(rng.integers(a, b - side + 1)), int(rng.integers(0, image.shape[0] - side + 1))
    patch = Image.fromarray(image[y0 : y0 + side, x0 : x0 + side]).resize((PATCH, PATCH), Image.BILINEAR)
    return np.asarray(patch), [x0, y0, side]


def write_photo_classes(root: Path, name: str, classes: Sequence[int], sizes: dict[str, int], seed: int = 0) -> Path:
    """Scenes whose labelled patch comes from the photographs ``PHOTO_CLASSES[c]`` for ``c`` in ``classes``;
    label = the index in ``classes``, balanced (scene i of a split has label i mod the class count)."""
    classes = [int(c) for c in classes]
    if not classes or len(set(classes)) != len(classes) or not all(0 <= c < len(PHOTO_CLASSES) for c in classes):
        raise ValueError(
            f"classes must be distinct indices 0-{len(PHOTO_CLASSES) - 1} into PHOTO_CLASSES, got {classes}"
        )
    photos = [photo(PHOTO_CLASSES[c]) for c in classes]
    bands = [split_bands(p.shape[1], sizes) for p in photos]
    rng = np.random.default_rng(seed)
    background = textures()
    images, labels = [], []
    provenance: dict = {"domain": "photos", "class_index": classes, "seed": seed, "boxes": {}, "fragment_boxes": {}}
    for split, count in sizes.items():
        boxes, fragment_boxes = [], []
        for i in range(count):
            label = i % len(classes)
            patch, box = _crop(photos[label], bands[label][split], rng)
            others, other_boxes = [], []
            for k in rng.integers(0, len(classes), size=4):
                fragment, fbox = _crop(photos[k], bands[k][split], rng)
                others.append(fragment)
                other_boxes.append([PHOTO_CLASSES[classes[k]], *fbox])
            texture = background[rng.integers(len(background))]
            images.append(gray_to_rgb(clutter_scene(patch, others, texture, rng, paste=True)))
            labels.append(label)
            boxes.append([PHOTO_CLASSES[classes[label]], *box])
            fragment_boxes.append(other_boxes)
        provenance["boxes"][split] = boxes
        provenance["fragment_boxes"][split] = fragment_boxes
    return write_task_folder(root / name, sizes, images, labels, provenance)
