"""The method-registry shape both halves share: a transfer method is one registration that owns every fact the
rest of the code asks about it, and callers ask the registry, never a method's name.

Each half registers its methods in its own package (``visual_classification/models/transfer/``,
``language_generation/methods/``) with a subclass of :class:`TransferMethod` that adds what only that half needs;
a config names one through ``MODEL.TRANSFER_TYPE``. This module imports no torch: the config (keys, defaults,
ranges) is built from the registry before torch loads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from runkit.ranges import Range

Method = TypeVar("Method", bound="TransferMethod")


@dataclass(frozen=True)
class ConfigKey:
    """One config key a method adds, with its default, the comment a user reads, and its allowed range."""

    key: str  # full dotted name, e.g. "MODEL.LORA.RANK"
    default: Any
    help: str
    range: Range | None = None
    choices: tuple[str, ...] = ()  # the values a string key admits (empty: any)

    def __post_init__(self) -> None:
        if self.range is not None and self.range.key != self.key:
            raise ValueError(f"ConfigKey {self.key}: its range is for {self.range.key}")


@dataclass(frozen=True, kw_only=True)
class TransferMethod:
    """One transfer type, in the shape both halves share; each half's subclass adds the rest.

    Attributes:
        name: the ``MODEL.TRANSFER_TYPE`` value.
        build: turns the loaded model into the one that trains (its signature is the half's).
        aliases: other names that select it (not listed among the choices).
        config_keys: the keys it adds to the config (several methods may add the same key with the same default).
        lr_grid: the learning rates ``tune`` tries, largest first.
        table_order: its place in summary tables (ascending).
        description: one line for tables, ``--help`` and the docs.
    """

    name: str
    build: Callable[..., Any]
    aliases: tuple[str, ...] = ()
    config_keys: tuple[ConfigKey, ...] = ()
    lr_grid: tuple[float, ...] = ()
    table_order: float = 100.0
    description: str = ""


class Registry(Mapping[str, Method], Generic[Method]):
    """Methods by their canonical name; aliases look up the same method but are not listed.

    Args:
        key: the config key that names a method, for error messages (e.g. ``MODEL.TRANSFER_TYPE``).
        method_type: the registration class this registry takes (a half's :class:`TransferMethod` subclass).
    """

    def __init__(self, key: str, method_type: type[TransferMethod] = TransferMethod) -> None:
        self.key = key
        self.method_type = method_type
        self._methods: dict[str, Method] = {}
        self._aliases: dict[str, str] = {}

    def register(self, method: Method) -> Method:
        """Adds ``method`` under its name and aliases; a name taken twice, or a config key given two defaults, stops."""
        if not isinstance(method, self.method_type):
            kind = f"{self.method_type.__module__}.{self.method_type.__name__}"
            raise TypeError(f"{self.key}: this registry takes a {kind}, got {type(method).__name__}")
        for taken in (method.name, *method.aliases):
            if taken in self._methods or taken in self._aliases:
                raise ValueError(f"{self.key} {taken!r} is registered twice")
        known = {k.key: k for m in self._methods.values() for k in m.config_keys}
        for key in method.config_keys:
            if key.key in known and known[key.key].default != key.default:
                raise ValueError(
                    f"{method.name} defines {key.key} with default {key.default!r}; "
                    f"another method has {known[key.key].default!r}"
                )
        self._methods[method.name] = method
        self._aliases.update({alias: method.name for alias in method.aliases})
        return method

    def unregister(self, name: str) -> None:
        """Removes a method (tests that register one of their own take it out again)."""
        method = self._methods.pop(self.canonical(name))
        for alias in method.aliases:
            self._aliases.pop(alias, None)

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

    def in_table_order(self) -> list[Method]:
        """The methods in their summary-table order (ties by name)."""
        return sorted(self._methods.values(), key=lambda m: (m.table_order, m.name))

    def config_keys(self) -> list[ConfigKey]:
        """Every method's config keys, each once, in registration order."""
        seen: dict[str, ConfigKey] = {}
        for method in self._methods.values():
            for key in method.config_keys:
                seen.setdefault(key.key, key)
        return list(seen.values())

    def ranges(self) -> list[Range]:
        return [k.range for k in self.config_keys() if k.range is not None]

    def __getitem__(self, name: str) -> Method:
        return self._methods[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._methods)

    def __len__(self) -> int:
        return len(self._methods)


def choice_problems(cfg: Mapping, keys: Iterable[ConfigKey]) -> list[str]:
    """``KEY='v' must be one of [...]`` for every key with choices whose value is not among them."""
    from runkit.ranges import lookup

    return [
        f"{key.key}={lookup(cfg, key.key)!r} must be one of {list(key.choices)}"
        for key in keys
        if key.choices and lookup(cfg, key.key) not in key.choices
    ]


def add_config_keys(cfg: Any, keys: Iterable[ConfigKey]) -> None:
    """Adds each key to the yacs ``cfg`` (making the sections it needs, of ``cfg``'s own node type), unless it is
    already there; yacs itself is not imported here."""
    node_type = type(cfg)
    for key in keys:
        *sections, leaf = key.key.split(".")
        node = cfg
        for section in sections:
            if section not in node:
                node[section] = node_type()
            node = node[section]
        if leaf not in node:
            node[leaf] = list(key.default) if isinstance(key.default, (list, tuple)) else key.default
