"""Demo only: instruction families whose answers can be checked exactly, in Alpaca format."""

from __future__ import annotations

import random

WORDS = (
    "cat",
    "river",
    "green",
    "apple",
    "stone",
    "cloud",
    "light",
    "table",
    "music",
    "horse",
    "paper",
    "sugar",
    "train",
    "bread",
    "chair",
    "ocean",
    "tiger",
    "plant",
    "glass",
    "smile",
    "robot",
    "pearl",
    "lemon",
    "night",
)


def make_record(family: str, rng: random.Random, words: tuple[str, ...] = WORDS) -> dict:
    if family == "add":
        a, b = rng.randint(10, 49), rng.randint(10, 49)
        return {
            "instruction": f"What is {a} plus {b}? Answer with the number only.",
            "input": "",
            "output": str(a + b),
        }
    word = rng.choice(words)
    if family == "reverse":
        return {"instruction": "Write the word backwards.", "input": word, "output": word[::-1]}
    if family == "upper":
        return {"instruction": "Write the word in capital letters.", "input": word, "output": word.upper()}
    raise ValueError(f"unknown task family {family!r}")


FAMILIES = ("add", "reverse", "upper")


HELD_OUT_WORDS = 6  # the last words of WORDS appear only in the held-out split


def make_split(count_per_family: int, seed: int, held_out: bool, exclude: set[str] = frozenset()) -> list[dict]:
    """Records, ``count_per_family`` of each family; held-out words and sums never occur in training."""
    rng = random.Random(seed)
    words = WORDS[-HELD_OUT_WORDS:] if held_out else WORDS[:-HELD_OUT_WORDS]
    records: list[dict] = []
    for family in FAMILIES:
        made = 0
        while made < count_per_family:
            record = make_record(family, rng, words)
            key = record["instruction"] + record["input"]
            if key in exclude:
                continue
            records.append({**record, "family": family})
            made += 1
    return records
