"""The linear probe's solvers against scikit-learn on the same frozen features (the converged probe against the reference solver).

``python benchmarks/probe_vs_sklearn.py [--out output/probe_vs_sklearn]``: a 10-class folder of real digits
(``visual_classification.demo.image_folder``: 160 train / 80 val / 200 test), the demo's DINOv2 ViT-S/14 at
112 px, features cached once (``DATA.CACHE_FEATURES``, float32, no stochastic depth, ``DATA.AUGMENT False``). Then, with the weight
decay (L2 strength) of each chosen on **val** over one grid:

- ``lbfgs``: this project's full-batch solver (``SOLVER.OPTIMIZER lbfgs``, 5 × 20 iterations);
- ``adamw``: the mini-batch default for your own data (AdamW 1e-4, head × 100, 5 epochs);
- ``sklearn``: ``LogisticRegression(C = 1/(n·λ))`` on the very tensors the runs trained on.

Prints val and test top-1 of each (test is read once, for the value chosen on val). CPU, a few minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from visual_classification.config import load_config  # noqa: E402
from visual_classification.demo.dinov2_onnx import BACKBONE, cached_weights  # noqa: E402
from visual_classification.demo.image_folder import write_digit_folder  # noqa: E402
from visual_classification.engine import feature_cache as fc  # noqa: E402
from visual_classification.train import train  # noqa: E402

GRID = (1e-4, 1e-3, 1e-2, 1e-1)


def run(out: Path, data: Path, weights: Path, solver: str, wd: float) -> dict:
    opts = {
        "MODEL.BACKBONE": BACKBONE,
        "MODEL.MODEL_ROOT": str(weights),
        "MODEL.TRANSFER_TYPE": "linear",
        "MODEL.DROP_PATH_RATE": 0.0,
        "DATA.DATAPATH": str(data),
        "DATA.CROPSIZE": 112,
        "DATA.NUM_WORKERS": 0,
        "DATA.CACHE_FEATURES": True,
        "DATA.AUGMENT": False,  # the features of a probe: one per image, no random crops
        "SOLVER.OPTIMIZER": solver,
        "SOLVER.WEIGHT_DECAY": wd,
        "SOLVER.TOTAL_EPOCH": 5,
        "SOLVER.TEST_PERIOD": 1,
        "SOLVER.LOG_EVERY_N": 1000,
        "OUTPUT_DIR": str(out / f"{solver}_wd{wd:g}"),
        "SEED": 0,
    }
    train(load_config("", [str(x) for kv in opts.items() for x in kv]))
    last = json.loads((out / f"{solver}_wd{wd:g}" / "metrics.jsonl").read_text().splitlines()[-1])
    return {"val": last["val"]["top1"], "test": last["test"]["top1"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="output/probe_vs_sklearn")
    args = parser.parse_args()
    out = Path(args.out)
    data = out / "digits"
    if not (data / "test").is_dir():
        write_digit_folder(data, {"train": 160, "val": 80, "test": 200})
    weights = cached_weights(Path("output/demo/weights"))
    rows = {}
    for solver in ("lbfgs", "adamw"):
        results = {wd: run(out, data, weights, solver, wd) for wd in GRID}
        best = max(GRID, key=lambda wd: (results[wd]["val"], -wd))
        rows[solver] = (best, results[best], results)
    # The runs' own cached features (one entry per split, in the split's order), told apart by their sizes.
    by_size = {len(f): f.float().numpy() for f in fc._MEMORY.values()}
    assert len(by_size) == 3, "expected exactly the train, val and test caches of one backbone"
    labels = {split: np.array([label for _, label in _samples(data / split)]) for split in ("train", "val", "test")}
    x = {split: by_size[len(labels[split])] for split in labels}
    n = len(labels["train"])
    sk = {}
    for wd in GRID:
        model = LogisticRegression(C=1 / (n * wd), max_iter=5000).fit(x["train"], labels["train"])
        sk[wd] = {s: 100 * float((model.predict(x[s]) == labels[s]).mean()) for s in ("val", "test")}
    best = max(GRID, key=lambda wd: (sk[wd]["val"], -wd))
    rows["sklearn"] = (best, sk[best], sk)
    print(
        "| solver | λ chosen on val | val top-1 | test top-1 | val over the grid "
        + " / ".join(f"{g:g}" for g in GRID)
        + " |"
    )
    print("|---|---|---|---|---|")
    for name, (wd, chosen, grid) in rows.items():
        curve = " / ".join(f"{grid[g]['val']:.1f}" for g in GRID)
        print(f"| {name} | {wd:g} | {chosen['val']:.1f} | {chosen['test']:.1f} | {curve} |")


def _samples(split_dir: Path) -> list[tuple[Path, int]]:
    from visual_classification.data.splits import image_folder_classes, read_image_folder_split

    return read_image_folder_split(split_dir, image_folder_classes(split_dir.parent / "train"))


if __name__ == "__main__":
    main()
