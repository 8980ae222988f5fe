"""What keying the feature caches by image content costs: ``feature_cache.images_digest`` over N small images.

Three timings in one process, on the same files: the old key (each image's size and mtime: one ``stat``),
the content key with a cold memo (every image read and hashed once), and with a warm memo (what every later
run pays: a ``stat`` per image and one read of the memo). Files just written sit in the page cache, so the
cold figure is a lower bound for images on a slow disk.

    python benchmarks/image_fingerprint_time.py --images 10000 --size 64
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_images(folder: Path, count: int, size: int) -> list[tuple[Path, int]]:
    rng = np.random.default_rng(0)
    samples = []
    for i in range(count):
        path = folder / f"{i // 1000}" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        samples.append((path, i % 10))
    return samples


def stat_key(samples: list[tuple[Path, int]]) -> str:
    """A key from path, size and mtime of each image (what a cheaper, content-blind memo would use)."""
    lines = []
    for path, _ in samples:
        st = Path(path).stat()
        lines.append(f"{Path(path).resolve()}\t{st.st_size}\t{st.st_mtime_ns}")
    return "\n".join(lines)


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (noise PNGs)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["TOAST_FINGERPRINT_INDEX"] = str(tmp / "memo.json")
        from visual_classification.engine.feature_cache import images_digest

        samples = write_images(tmp / "images", args.images, args.size)
        megabytes = sum(p.stat().st_size for p, _ in samples) / 2**20
        old = seconds(lambda: stat_key(samples))
        cold = seconds(lambda: images_digest(samples))
        warm = seconds(lambda: images_digest(samples))
        old_again = seconds(lambda: stat_key(samples))
        memo = (tmp / "memo.json").stat().st_size / 2**20
    old = min(old, old_again)
    print(f"{args.images} PNGs of {args.size}x{args.size} px ({megabytes:.1f} MiB), memo {memo:.1f} MiB")
    print("| key | seconds | / size+mtime key |")
    print("|---|---:|---:|")
    for name, value in (("size + mtime (before)", old), ("content, cold memo", cold), ("content, warm memo", warm)):
        print(f"| {name} | {value:.2f} | {value / old:.1f} |")


if __name__ == "__main__":
    main()
