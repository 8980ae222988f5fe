"""Build the VTAB-1k folder layout from tensorflow-datasets, with the original split and label rules.

    pip install tensorflow tensorflow-datasets   # optional; only this script needs them
    python -m visual_classification.data.prepare_vtab --tfds-dir ~/tensorflow_datasets --out /data/vtab-1k

Each task becomes ``<out>/<task>/{train800,val200,train800val200,test}.txt`` (``images/NNNNNN.png label``)
with PNGs beside them. train800 is always the first 800 training examples; val200 is 200 examples from
the slice the original code uses; test is the task's test slice (VTAB-1k ``README`` / VPT ``vtab`` data
code). The split strings and label rules below are plain functions, unit-tested without TensorFlow.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runkit.cli import UserError, user_errors

from .registry import VTAB_TASKS


@dataclass(frozen=True)
class Recipe:
    builder: str  # tfds builder name (with config)
    val: tuple[str, int]  # (tfds split string to start from, number of examples) for val200
    test: str  # tfds split string of the test set
    label: Callable[[dict], int]  # example -> label
    image_key: str = "image"


def clevr_count(example: dict) -> int:
    return len(example["objects"]["size"]) - 3


def _bin(value: float, thresholds: list[float]) -> int:
    """The largest index j with thresholds[j] < value."""
    return max(j for j, t in enumerate(thresholds) if t < value)


def clevr_distance(example: dict) -> int:
    distance = min(float(z) for z in example["objects"]["pixel_coords"][:, 2])
    return _bin(distance, [0.0, 8.0, 8.5, 9.0, 9.5, 10.0, 100.0])


def kitti_distance(example: dict) -> int:
    objects = example["objects"]
    vehicles = [float(loc[2]) for loc, kind in zip(objects["location"], objects["type"]) if int(kind) < 3]
    return _bin(min(vehicles) if vehicles else 1000.0, [-100.0, 8.0, 20.0, 999.0])


def dsprites_bin(key: str, values: int, bins: int = 16) -> Callable[[dict], int]:
    return lambda example: int(math.floor(int(example[key]) / (values / bins)))


def plain(key: str = "label") -> Callable[[dict], int]:
    return lambda example: int(example[key])


RECIPES: dict[str, Recipe] = {
    "cifar": Recipe("cifar100:3.*.*", ("train[45000:]", 200), "test", plain()),
    "caltech101": Recipe("caltech101:3.*.*", ("train[90%:]", 200), "test", plain()),
    "dtd": Recipe("dtd:3.*.*", ("validation", 200), "test", plain()),
    "oxford_flowers102": Recipe("oxford_flowers102:2.*.*", ("validation", 200), "test", plain()),
    "oxford_iiit_pet": Recipe("oxford_iiit_pet:3.*.*", ("train[80%:]", 200), "test", plain()),
    "svhn": Recipe("svhn_cropped:3.*.*", ("train[90%:]", 200), "test", plain()),
    "sun397": Recipe("sun397/tfds:4.*.*", ("validation", 200), "test", plain()),
    "patch_camelyon": Recipe("patch_camelyon:2.*.*", ("validation", 200), "test", plain()),
    "eurosat": Recipe("eurosat/rgb:2.*.*", ("train[60%:]", 200), "train[80%:]", plain()),
    "resisc45": Recipe("resisc45:3.*.*", ("train[60%:]", 200), "train[80%:]", plain()),
    "diabetic_retinopathy": Recipe(
        "diabetic_retinopathy_detection/btgraham-300:3.*.*", ("validation", 200), "test", plain()
    ),
    "clevr_count": Recipe("clevr:3.*.*", ("train[90%:]", 200), "validation", clevr_count),
    "clevr_dist": Recipe("clevr:3.*.*", ("train[90%:]", 200), "validation", clevr_distance),
    "dmlab": Recipe("dmlab:2.0.1", ("validation", 200), "test", plain()),
    "kitti": Recipe("kitti:3.3.0", ("validation", 200), "test", kitti_distance),
    "dsprites_loc": Recipe(
        "dsprites:2.*.*", ("train[80%:]", 200), "train[90%:]", dsprites_bin("label_x_position", 32)
    ),
    "dsprites_ori": Recipe(
        "dsprites:2.*.*", ("train[80%:]", 200), "train[90%:]", dsprites_bin("label_orientation", 40)
    ),
    "smallnorb_azi": Recipe("smallnorb:2.*.*", ("test", 200), "test[50%:]", plain("label_azimuth")),
    "smallnorb_ele": Recipe("smallnorb:2.*.*", ("test", 200), "test[50%:]", plain("label_elevation")),
}


def split_plan(task: str) -> dict[str, tuple[str, int | None]]:
    """``{folder split: (tfds split string, how many examples or None for all)}``."""
    recipe = RECIPES[task]
    return {"train800": ("train[:800]", 800), "val200": recipe.val, "test": (recipe.test, None)}


def _prepare(task: str, tfds_dir: str, out: Path) -> None:
    import numpy as np
    import tensorflow_datasets as tfds
    from PIL import Image

    recipe = RECIPES[task]
    folder = out / task
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[str]] = {}
    for split, (tf_split, count) in split_plan(task).items():
        dataset = tfds.load(recipe.builder, split=tf_split, data_dir=tfds_dir, shuffle_files=False)
        if count is not None:
            dataset = dataset.take(count)
        lines[split] = []
        for i, example in enumerate(tfds.as_numpy(dataset)):
            pixels = np.asarray(example[recipe.image_key])
            if pixels.ndim == 3 and pixels.shape[-1] == 1:
                pixels = pixels[..., 0]
            if pixels.ndim == 2:  # grayscale (dSprites 0/1, smallNORB) tiled to three channels
                pixels = np.repeat((pixels * (255 if pixels.max() <= 1 else 1)).astype(np.uint8)[..., None], 3, 2)
            rel = f"images/{split}_{i:06d}.png"
            Image.fromarray(pixels).save(folder / rel)
            lines[split].append(f"{rel} {recipe.label(example)}")
        print(f"{task} {split}: {len(lines[split])} images")
    lines["train800val200"] = lines["train800"] + lines["val200"]
    for split, rows in lines.items():
        (folder / f"{split}.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tfds-dir", required=True, help="tensorflow-datasets data_dir (downloaded and prepared)")
    parser.add_argument("--out", required=True, help="where the VTAB-1k folders are written")
    parser.add_argument("--tasks", nargs="+", default=list(VTAB_TASKS), choices=list(VTAB_TASKS))
    args = parser.parse_args(argv)
    with user_errors():
        try:
            import tensorflow_datasets  # noqa: F401
        except ImportError as err:
            raise UserError(
                "prepare_vtab needs tensorflow-datasets: pip install tensorflow tensorflow-datasets"
            ) from err
        for task in args.tasks:
            _prepare(task, args.tfds_dir, Path(args.out))


if __name__ == "__main__":
    main()
