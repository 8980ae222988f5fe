"""One way to read a run's config for both sub-projects: defaults ← YAML file (after its ``_BASE_``) ←
``KEY VALUE`` pairs, with errors that name the file or the key.

It works on any yacs ``CfgNode`` handed to it (duck-typed, so this module imports no yacs) and reads YAML
through PyYAML, imported when a file is read, so a CLI answers config errors before torch loads. A config
loader is plumbing both halves need, like :mod:`runkit.files`; keeping one copy here is what stops the two
halves from drifting (they had two loaders, only one of which knew ``_BASE_``).

Beyond plain yacs: an integer is accepted for a float key (``GENERATE.TEMPERATURE 0``,
``SOLVER.HEAD_LR_MULT 100``, ``lr: 1`` in YAML) and becomes that float; ``_BASE_`` names a file relative
to the one that holds it, as in detectron2, and may chain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _coerce(default: Any, value: Any) -> Any:
    """``value`` as the type of ``default`` where yacs would refuse a harmless difference (int for float)."""
    if isinstance(default, float) and _is_int(value):
        return float(value)
    return value


def _coerce_tree(node: Any, content: dict) -> dict:
    """``content`` (a nested dict from YAML) with ints turned into floats where ``node`` holds floats."""
    out = {}
    for key, value in content.items():
        default = node.get(key) if hasattr(node, "get") else None
        if isinstance(value, dict) and hasattr(default, "items"):
            out[key] = _coerce_tree(default, value)
        else:
            out[key] = _coerce(default, value)
    return out


def read_yaml(path: Path) -> dict:
    """A YAML mapping from ``path``; a missing, non-UTF-8 or malformed file is named with what was expected."""
    import yaml

    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err})") from err
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from err
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a YAML mapping of config keys, got {type(content).__name__}")
    return content


def merge_yaml(cfg: Any, path: str | Path, seen: tuple[Path, ...] = ()) -> None:
    """Merges ``path`` into ``cfg``, after the file its ``_BASE_`` key names (relative to it)."""
    path = Path(path)
    if path.resolve() in seen:
        raise ValueError(f"{path}: _BASE_ files form a cycle ({' -> '.join(str(p) for p in seen)})")
    content = read_yaml(path)
    base = content.pop("_BASE_", None)
    if base is not None and (not isinstance(base, str) or not base.strip()):
        raise ValueError(
            f"{path}: _BASE_ must name one YAML file (a path relative to {path.name}), got {base!r}; to build on "
            "several files, let each one's _BASE_ name the next"
        )
    if base:
        parent = path.parent / base
        if not parent.is_file():
            raise FileNotFoundError(f"{path}: its _BASE_ file {parent} does not exist")
        merge_yaml(cfg, parent, (*seen, path.resolve()))
    merge_mapping(cfg, content, str(path))


def merge_mapping(cfg: Any, content: dict, where: str) -> None:
    """Merges a nested dict of config values (as a YAML file holds them); errors name ``where``."""
    try:
        cfg.merge_from_other_cfg(type(cfg)(_coerce_tree(cfg, content)))
    except (KeyError, ValueError, AssertionError, TypeError) as err:
        raise ValueError(f"{where}: {err}") from err


def merge_overrides(cfg: Any, opts: list[str]) -> None:
    """Merges ``KEY VALUE`` pairs (values parsed as yacs does, ints accepted for float keys)."""
    if len(opts) % 2:
        raise ValueError(f"overrides must come in KEY VALUE pairs, got {len(opts)} items: {opts}")
    pairs = []
    for key, raw in zip(opts[0::2], opts[1::2]):
        node = cfg
        for part in key.split(".")[:-1]:
            node = node.get(part) if hasattr(node, "get") else None
        default = node.get(key.split(".")[-1]) if hasattr(node, "get") else None
        pairs += [key, _coerce(default, cfg._decode_cfg_value(raw))]
    try:
        cfg.merge_from_list(pairs)
    except (KeyError, ValueError, AssertionError, TypeError) as err:
        raise ValueError(f"command-line override: {err}") from err


def load_config(defaults: Any, config_file: str | None, opts: list[str]) -> Any:
    """``defaults`` (a fresh ``CfgNode``) ← ``config_file`` (and its ``_BASE_`` chain) ← ``opts``, unfrozen."""
    if config_file:
        merge_yaml(defaults, config_file)
    merge_overrides(defaults, list(opts))
    return defaults
