"""A registry of transfer methods by name, with aliases: one shape for the vision and language halves.

Each half registers its methods in one file (``visual_classification/models/transfer/``,
``language_generation/transfer.py``); a config names one through ``MODEL.TRANSFER_TYPE``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

Method = TypeVar("Method")


@dataclass(frozen=True)
class TransferMethod:
    """One transfer type, in the shape both halves share: the ``MODEL.TRANSFER_TYPE`` name and ``build``,
    which turns the loaded model into the one that trains. Each half's subclass adds what only it needs
    (vision: which tensors train, the model types it combines with; language: the files a finished run holds).
    """

    name: str
    build: Callable[..., Any]


class Registry(Mapping[str, Method], Generic[Method]):
    """Methods by their canonical name; aliases look up the same method but are not listed.

    Args:
        key: the config key that names a method, for error messages (e.g. ``MODEL.TRANSFER_TYPE``).
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self._methods: dict[str, Method] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, method: Method, aliases: tuple[str, ...] = ()) -> Method:
        for taken in (name, *aliases):
            if taken in self._methods or taken in self._aliases:
                raise ValueError(f"{self.key} {taken!r} is registered twice")
        self._methods[name] = method
        self._aliases.update({alias: name for alias in aliases})
        return method

    def canonical(self, name: str) -> str:
        """The registered name of ``name`` (itself, or what the alias stands for); unknown names stop."""
        name = self._aliases.get(name, name)
        if name not in self._methods:
            choices = sorted(self._methods)
            if self._aliases:
                aliases = ", ".join(f"{a} = {n}" for a, n in sorted(self._aliases.items()))
                raise ValueError(f"{self.key}={name!r} is unknown; choose one of {choices} (aliases: {aliases})")
            raise ValueError(f"{self.key}={name!r} is unknown; choose one of {choices}")
        return name

    def lookup(self, name: str) -> Method:
        """The method registered as ``name`` or under the alias ``name``; unknown names stop, listing the choices."""
        return self._methods[self.canonical(name)]

    def __getitem__(self, name: str) -> Method:
        return self._methods[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._methods)

    def __len__(self) -> int:
        return len(self._methods)
