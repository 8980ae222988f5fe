"""Two output folders of the experiment side by side: for every test scoring both hold (same method, lr,
steps and seed), whether each item's greedy answer is the same and the largest answer-loss gap. This is how
a change to the scorer or the training loss is shown not to move a result.

    python -m experiments.lm_refocus.compare output/lm_refocus output/lm_fast
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def compare(first: Path, second: Path) -> dict:
    """Per scoring (``method/run``) both folders hold: items, answers the same, largest loss gap."""
    found = {}
    for path in sorted(first.glob("runs/*/*/scores_test.json")):
        name = str(path.parent.relative_to(first / "runs"))
        other = second / "runs" / name / "scores_test.json"
        if not other.is_file():
            continue
        mine, theirs = json.loads(path.read_text())["items"], json.loads(other.read_text())["items"]
        if len(mine) != len(theirs):
            raise ValueError(f"{path} has {len(mine)} items, {other} {len(theirs)}: not the same test split")
        found[name] = {
            "items": len(mine),
            "same_answers": sum(a["answer"] == b["answer"] for a, b in zip(mine, theirs)),
            "loss_gap": max(abs(a["loss"] - b["loss"]) for a, b in zip(mine, theirs)),
        }
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    args = parser.parse_args(argv)
    found = compare(args.first, args.second)
    for name, row in found.items():
        print(f"{name}: {row['same_answers']}/{row['items']} answers the same, loss gap {row['loss_gap']:.1e}")
    same = sum(row["same_answers"] == row["items"] for row in found.values())
    gap = max((row["loss_gap"] for row in found.values()), default=0.0)
    print(f"{len(found)} test scorings in both; {same} with every answer the same; largest loss gap {gap:.1e}")


if __name__ == "__main__":
    main()
