"""One shape for a study's table of methods: each column is a name, the ``KEY VALUE`` overrides it gives the
library's config, the lr grid it starts from, where it starts, and its family. The studies ask a method
these facts, never its name."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Method:
    """A column of a study's table."""

    name: str
    overrides: tuple[str, ...]  # KEY VALUE pairs of the library's config, MODEL.TRANSFER_TYPE among them
    lrs: tuple[float, ...]  # the lr grid it starts from (AdamW, as used), grown past an edge that wins
    pretuned: bool = False  # starts from the top-down path pre-tuned on the source (MODEL.TOPDOWN_WEIGHTS)
    source_stage: bool = False  # starts from its own run on the source data, trained before the target
    family: Literal["toast", "baseline"] = "baseline"  # how the tables compare it and the plots colour it
    # what ``lrs`` grids: the lr, or the L2 strength (SOLVER.WEIGHT_DECAY) of a probe solved by L-BFGS, which
    # has no lr to choose
    axis: Literal["lr", "wd"] = "lr"

    def __post_init__(self) -> None:
        if len(self.overrides) % 2:
            raise ValueError(f"{self.name}: overrides must be KEY VALUE pairs, got {self.overrides}")
        if "MODEL.TRANSFER_TYPE" not in self.overrides[::2]:
            raise ValueError(f"{self.name}: overrides must set MODEL.TRANSFER_TYPE, got {self.overrides}")
        if not self.lrs:
            raise ValueError(f"{self.name}: lrs must hold at least one learning rate")
        if self.family not in ("toast", "baseline"):
            raise ValueError(f"{self.name}: family must be 'toast' or 'baseline', got {self.family!r}")
        if self.axis not in ("lr", "wd"):
            raise ValueError(f"{self.name}: axis must be 'lr' or 'wd', got {self.axis!r}")

    @property
    def opts(self) -> dict[str, str]:
        """The overrides as ``{KEY: VALUE}``."""
        return dict(zip(self.overrides[::2], self.overrides[1::2]))

    @property
    def transfer(self) -> str:
        """The library's transfer type (``MODEL.TRANSFER_TYPE``)."""
        return self.opts["MODEL.TRANSFER_TYPE"]

    @property
    def middle_lr(self) -> float:
        return self.lrs[len(self.lrs) // 2]

    @property
    def is_toast(self) -> bool:
        return self.family == "toast"


def as_overrides(opts: dict) -> list[str]:
    """``{KEY: value}`` as the ``KEY VALUE`` strings of a command line."""
    return [str(x) for kv in opts.items() for x in kv]


def table(methods: Iterable[Method]) -> dict[str, Method]:
    """``{name: method}`` in the order given; a name given twice is an error."""
    found: dict[str, Method] = {}
    for method in methods:
        if method.name in found:
            raise ValueError(f"two methods are named {method.name!r}")
        found[method.name] = method
    return found
