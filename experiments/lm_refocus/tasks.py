"""Instruction families with exact answers, in Alpaca format, split so that test items are never seen in
training: the words (and sums, JSON values) of the test split come from pools that training never uses."""

from __future__ import annotations

import json
import random

# Lowercase words of 4-7 letters, no repeated use across pools (split below by position).
WORDS = """
apple river green stone cloud light table music horse paper sugar train bread chair ocean tiger plant glass
smile robot pearl lemon night brick candle forest garden honey island jacket kettle ladder mirror needle
orange pencil rabbit salad silver spoon tower velvet window yellow zebra anchor basket button carpet dragon
engine feather guitar hammer insect jungle lizard marble napkin oyster parrot pillow rocket saddle tomato
violin walnut wizard bottle butter castle cherry cotton desert donkey falcon ginger helmet jelly kitten
lantern meadow monkey nickel onion pepper planet puzzle rose shadow sponge summer turtle valley wallet
bucket cactus circle copper crayon cookie dinner eagle fabric fence fossil gravel harbor iron juice kayak
lobster magnet mango muffin nectar olive panda peach pirate quartz radio ribbon sailor shell spider
statue thunder tunnel umbrella vase wagon whale yogurt acorn badge beetle blanket cabin camel cobra
daisy dolphin elbow fiddle goose grape hockey igloo jewel koala lemur llama melon mitten noodle otter
pebble pickle quail raven rhino scarf skate sloth snail sock tulip vulture walrus bison cider
""".split()
WORDS = list(dict.fromkeys(w for w in WORDS if 4 <= len(w) <= 7))
POOLS = {"train": WORDS[0::3], "val": WORDS[1::3], "test": WORDS[2::3]}
KEYS = ("city", "color", "code", "name", "size")


def _sum_split(total: int) -> str:
    return {0: "test", 1: "val"}.get(total % 4, "train")


def make_record(family: str, rng: random.Random, split: str) -> dict:
    words = POOLS[split]
    if family == "add":
        while True:
            a, b = rng.randint(10, 59), rng.randint(10, 59)
            if _sum_split(a + b) == split:
                return {"instruction": f"What is {a} plus {b}? Answer with the number only.", "input": "",
                        "output": str(a + b)}  # fmt: skip
    word = rng.choice(words)
    if family == "reverse":
        return {"instruction": "Write the word backwards.", "input": word, "output": word[::-1]}
    if family == "upper":
        return {"instruction": "Write the word in capital letters.", "input": word, "output": word.upper()}
    if family == "count":
        return {"instruction": "How many letters does the word have? Answer with the number only.", "input": word,
                "output": str(len(word))}  # fmt: skip
    if family == "sort":
        chosen = rng.sample(words, 3)
        return {"instruction": "Sort the words alphabetically. Answer with the words separated by commas.",
                "input": ", ".join(chosen), "output": ", ".join(sorted(chosen))}  # fmt: skip
    if family == "json":
        keys = rng.sample(KEYS, 3)
        values = rng.sample(words, 3)
        asked = rng.randrange(3)
        return {"instruction": f'What is the value of "{keys[asked]}" in the JSON object? Answer with the value only.',
                "input": json.dumps(dict(zip(keys, values))), "output": values[asked]}  # fmt: skip
    raise ValueError(f"unknown task family {family!r}; families are {FAMILIES}")


FAMILIES = ("add", "reverse", "upper", "count", "sort", "json")


def make_split(families: tuple[str, ...], split: str, per_family: int, seed: int) -> list[dict]:
    """``per_family`` distinct records of each family drawn from the split's own pools."""
    rng = random.Random(f"{split}-{seed}")
    records: list[dict] = []
    for family in families:
        seen: set[str] = set()
        tries = 0
        while len(seen) < per_family:
            record = make_record(family, rng, split)
            key = record["instruction"] + "\n" + record["input"]
            tries += 1
            if tries > 100 * per_family:  # a pool too small for that many distinct items
                raise ValueError(f"family {family}: cannot draw {per_family} distinct {split} items")
            if key in seen:
                continue
            seen.add(key)
            records.append({**record, "family": family})
    return records


def answers_in(records: list[dict]) -> set[str]:
    """The answers (and input words) a corpus must not contain, for the deduplication of the pre-tuning text."""
    out = set()
    for r in records:
        out.add(r["output"])
        out.update(w for w in r["input"].replace(",", " ").replace('"', " ").split() if w.isalpha())
    return {a for a in out if len(a) >= 4 and not a.isdigit()}
