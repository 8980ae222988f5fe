"""Adapter files: only the tensors a transfer method adds or trains, as safetensors plus a JSON config.

The layout follows ``peft`` (``adapter_model.safetensors`` + ``adapter_config.json``), named
``adapter.safetensors`` + ``adapter_config.json`` here. A model opts in by implementing
``adapter_state_dict()``, returning its own tensors (not copies) keyed by name; that one method
decides both what is saved and what is loaded, so the two cannot disagree.

This module also converts the original authors' release format (``decoders.{i}.linear.weight``,
``decoders.{i}.linear2.weight``, ``prompt``, ``top_down_transform``) to :class:`toast.TopDownModule` keys.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from runkit.cli import UserError
from runkit.files import atomic_path, atomic_write_text, read_json_object

ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
FORMAT_VERSION = 1


class AdapterModel(Protocol):
    def adapter_state_dict(self) -> dict[str, torch.Tensor]: ...


def _adapter_tensors(model: Any) -> dict[str, torch.Tensor]:
    if not hasattr(model, "adapter_state_dict"):
        raise TypeError(
            f"{type(model).__name__} does not define adapter_state_dict(); it cannot be saved as an adapter"
        )
    return model.adapter_state_dict()


def save_adapter(model: AdapterModel, directory: str | os.PathLike, config: Mapping[str, Any]) -> Path:
    """Writes ``adapter.safetensors`` and ``adapter_config.json`` (with tensor shapes) atomically into ``directory``."""
    directory = Path(directory)
    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in _adapter_tensors(model).items()}
    meta = {
        "format_version": FORMAT_VERSION,
        **config,
        "tensors": {name: list(t.shape) for name, t in tensors.items()},
    }
    with atomic_path(directory / ADAPTER_WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    atomic_write_text(directory / ADAPTER_CONFIG, json.dumps(meta, indent=2) + "\n")
    return directory


def read_adapter_config(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / ADAPTER_CONFIG
    if not path.is_file():
        raise FileNotFoundError(
            f"no {ADAPTER_CONFIG} in {directory}: is this an adapter folder written by save_adapter?"
        )
    config = read_json_object(path, "expected the adapter config save_adapter writes")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: adapter format_version {version!r}; this code reads version {FORMAT_VERSION}")
    return config


def read_tensors(path: str | os.PathLike, device: str = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; a damaged file (header, size) is an error naming it, since the
    library's own message names neither the file nor what it expected."""
    try:
        return load_file(str(path), device=device)
    except SafetensorError as err:
        raise UserError(
            f"{path} is not a readable safetensors file ({err}); expected an adapter written by save_adapter: "
            "copy the folder again or train the run again"
        ) from err


def read_adapter_top_down(directory: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """The top-down module's tensors (``top_down.*``) from an adapter folder, TOAST-Lite's low-rank updates
    merged into their weights (``W + scale · lora_b @ lora_a``, the scale from ``adapter_config.json``).

    Used to start a run from another run's (e.g. a pre-tuning run's) top-down path. A folder with low-rank
    updates but no recorded ``low_rank_scale`` is refused by name: dropping the updates would silently start
    from the path before its tuning.
    """
    weights = Path(directory) / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{directory} is a folder without {ADAPTER_WEIGHTS}")
    prefix = "top_down."
    tensors = read_tensors(weights)
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix) and "lora_" not in k}
    if not state:
        raise ValueError(f"{weights} holds no top-down tensors (top_down.*)")
    low_rank = sorted(k[len(prefix) :] for k in tensors if k.startswith(prefix) and k.endswith(".lora_a"))
    if low_rank:
        scale = read_adapter_config(directory).get("low_rank_scale")
        if scale is None:
            raise ValueError(
                f"{weights} holds TOAST-Lite low-rank updates ({len(low_rank)}, e.g. {prefix}{low_rank[0]}) but "
                f"{Path(directory) / ADAPTER_CONFIG} records no low_rank_scale, so they cannot be merged into the "
                "top-down weights; re-save the run with this version, or start from a toast run"
            )
        for name in low_rank:
            owner = name[: -len(".lora_a")]
            update = tensors[f"{prefix}{owner}.lora_b"].float() @ tensors[f"{prefix}{name}"].float()
            state[f"{owner}.weight"] = (state[f"{owner}.weight"].float() + scale * update).to(
                state[f"{owner}.weight"].dtype
            )
    return state, str(weights)


def load_adapter(
    model: AdapterModel, directory: str | os.PathLike, expect: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Copies the adapter's tensors into ``model``; every tensor must exist with the same shape.

    Args:
        expect: config entries that must match (e.g. ``{"backbone": ..., "transfer_type": ...}``); a
            mismatch is an error naming the entry and both values.
    Returns:
        the adapter's config.
    """
    directory = Path(directory)
    config = read_adapter_config(directory)
    for key, wanted in (expect or {}).items():
        if config.get(key) != wanted:
            raise ValueError(
                f"adapter {directory} was saved with {key}={config.get(key)!r}, but this model has {key}={wanted!r}"
            )
    weights = directory / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing (the folder has {ADAPTER_CONFIG} but no weights)")
    saved = read_tensors(weights)
    own = _adapter_tensors(model)
    check_fit(own, saved, "adapter", str(weights))
    _copy_into(model, own, saved)
    return config


def check_fit(own: Mapping[str, torch.Tensor], saved: Mapping[str, torch.Tensor], kind: str, source: str) -> None:
    """The strict-load check: ``saved`` must hold exactly ``own``'s names with ``own``'s shapes; anything else is
    an error naming ``kind`` (what is loaded), ``source`` and every missing, unexpected or mis-shaped tensor."""
    missing = sorted(set(own) - set(saved))
    unexpected = sorted(set(saved) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"{kind} {source} does not fit this model: missing {missing or 'none'}; unexpected {unexpected or 'none'}"
        )
    for name, tensor in saved.items():
        if tensor.shape != own[name].shape:
            raise ValueError(
                f"{kind} tensor {name} has shape {tuple(tensor.shape)} in {source}, "
                f"but the model expects {tuple(own[name].shape)}"
            )


def _copy_into(model: Any, own: dict[str, torch.Tensor], saved: dict[str, torch.Tensor]) -> None:
    """Copies ``saved`` into the model's tensors. FSDP2 shards them as ``DTensor``s, into which a plain tensor
    cannot be copied: there every process hands its full copy to ``set_model_state_dict``, which keeps each
    process's shard (the names were checked above, so ``strict=False`` only leaves the frozen base alone)."""
    from torch.distributed.tensor import DTensor

    if any(isinstance(t, DTensor) for t in own.values()):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(model, dict(saved), options=StateDictOptions(full_state_dict=True, strict=False))
        return
    with torch.no_grad():
        for name, tensor in saved.items():
            own[name].copy_(tensor)


_ORIGINAL_DECODER = re.compile(r"^decoders\.(\d+)\.(linear|linear2)(?:\.weight)?$")
_ORIGINAL_NAMES = {"linear": "down", "linear2": "to_value"}


def is_original_top_down_key(key: str, prefix: str = "") -> bool:
    """Whether ``key`` belongs to the top-down path in the original release format."""
    if not key.startswith(prefix):
        return False
    rest = key[len(prefix) :]
    return rest in ("prompt", "top_down_transform") or _ORIGINAL_DECODER.match(rest) is not None


def convert_original_top_down(state_dict: Mapping[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """Maps the original release's top-down keys (after ``prefix``) to :class:`toast.TopDownModule` keys.

    ``decoders.{i}.linear.weight`` → ``decoders.{i}.down.weight`` (A_i), ``decoders.{i}.linear2.weight`` →
    ``decoders.{i}.to_value.weight`` (B_i), ``prompt`` → ``prompt``, ``top_down_transform`` → ``transform``.
    Keys that are not top-down keys are left out.
    """
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        if not is_original_top_down_key(key, prefix):
            continue
        rest = key[len(prefix) :]
        if rest == "prompt":
            converted["prompt"] = tensor
        elif rest == "top_down_transform":
            converted["transform"] = tensor
        else:
            match = _ORIGINAL_DECODER.match(rest)
            converted[f"decoders.{match.group(1)}.{_ORIGINAL_NAMES[match.group(2)]}.weight"] = tensor
    return converted


def load_top_down_state(top_down: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Strictly loads converted top-down weights, naming any missing, unexpected or mis-shaped tensor."""
    own = {k: v for k, v in top_down.state_dict().items() if "lora_" not in k}
    check_fit(own, state, "top-down weights", source)
    top_down.load_state_dict(dict(state), strict=False)
