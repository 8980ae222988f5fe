"""One format for the value ranges of numeric config keys, on both halves: a :class:`Range` per key, checked
with the config (yacs checks types, not values) so that a value that would train wrongly without an error (a
negative lr ascends the loss) or fail only mid-training stops at once, naming the key and what is allowed."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Range:
    """Allowed values of one numeric key: ``low``..``high`` (None: unbounded), each end open or closed, plus
    the single values in ``also`` (e.g. -1 for "all" in ``TRAIN.MAX_STEPS``); ``note`` says why, in the error."""

    key: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    also: tuple[float, ...] = ()
    note: str = ""

    def describe(self) -> str:
        if self.high is None:
            text = f"{'>' if self.low_open else '>='} {self.low:g}"
        elif self.low is None:
            text = f"{'<' if self.high_open else '<='} {self.high:g}"
        else:
            text = f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        text += "".join(f", or {v:g}" for v in self.also)
        return f"{text} ({self.note})" if self.note else text

    def admits(self, value: float) -> bool:
        if value in self.also:
            return True
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))


def lookup(cfg: Mapping, key: str) -> Any:
    """``cfg["A"]["B"]`` for ``"A.B"``; None where a part is missing."""
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def range_problems(cfg: Mapping, ranges: Iterable[Range]) -> list[str]:
    """``KEY=value must be ...`` for every numeric value of ``cfg`` outside its range (None and absent keys pass:
    a library's own default)."""
    problems = []
    for allowed in ranges:
        value = lookup(cfg, allowed.key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if not allowed.admits(value):
            problems.append(f"{allowed.key}={value!r} must be {allowed.describe()}")
    return problems
