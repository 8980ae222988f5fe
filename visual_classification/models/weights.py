"""Reading local weights files and loading them strictly into a timm backbone.

One filter per foreign format, then a strict load (timm's habit): the original TOAST release's
top-down tensors are split off, timm's own ``checkpoint_filter_fn`` converts the rest (and resamples
position embeddings to the configured input size), the old classifier (only) is dropped, and whatever does
not fit after that is an error that names the keys.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from toast.adapter import is_original_top_down_key

logger = logging.getLogger(__name__)

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
WRAPPER_KEYS = ("model", "state_dict", "model_state_dict")
DISTILLATION_HEAD = "head_dist"  # DeiT-distilled checkpoints carry a second classifier


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Reads a ``.safetensors`` or torch file (plain, or under ``model`` / ``state_dict`` / ``model_state_dict``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
        except Exception as err:
            raise ValueError(f"cannot read {path} as a safetensors file: {err}") from err
    elif path.suffix in TORCH_SUFFIXES:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"cannot read {path} as a torch weights file (weights_only=True): {err}") from err
        for key in WRAPPER_KEYS:
            if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
                state = state[key]
                break
    else:
        raise ValueError(
            f"weights file {path} has suffix {path.suffix!r}; expected .safetensors, .npz or one of {TORCH_SUFFIXES}"
        )
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ValueError(f"{path}: entries that are not tensors: {not_tensors[:10]}")
    if state and all(k.startswith("module.") for k in state):
        logger.info("%s: stripping the DDP 'module.' prefix", path)
        state = {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def split_top_down(state: Mapping[str, torch.Tensor]) -> tuple[dict, dict]:
    """(backbone tensors, original-format top-down tensors)."""
    backbone, top_down = {}, {}
    for key, tensor in state.items():
        (top_down if is_original_top_down_key(key) else backbone)[key] = tensor
    return backbone, top_down


def _timm_filter(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """The model family's own ``checkpoint_filter_fn`` (format conversion, position-embedding resampling)."""
    filter_fn = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    return filter_fn(state, model) if filter_fn is not None else state


def _listing(keys: list[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    """The old classifier's key prefixes, from timm's ``pretrained_cfg`` (``head`` for a ViT, ``head.fc`` for a
    ConvNeXt, whose ``head.norm`` is the backbone's final norm and must load)."""
    names = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or "head"
    names = (names,) if isinstance(names, str) else tuple(names)
    return tuple(f"{name}." for name in (*names, DISTILLATION_HEAD))


def load_backbone_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Converts, drops the old classifier, and loads strictly; any other mismatch is an error naming the keys."""
    state = _timm_filter(state, model)
    own = model.state_dict()
    prefixes = classifier_prefixes(model)
    dropped = [k for k in state if k.startswith(prefixes) and k not in own]
    if dropped:
        logger.info("%s: dropping the checkpoint's classifier (%s)", source, ", ".join(dropped))
    state = {k: v for k, v in state.items() if k not in dropped}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(state) & set(own))
        if state[k].shape != own[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if wrong_shape:
        problems.append(f"wrong shapes: {_listing(wrong_shape)}")
    if problems:
        raise ValueError(f"weights in {source} do not fit {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def load_npz(model: nn.Module, path: Path) -> None:
    """big_vision / original ViT ``.npz`` files, through timm's own loader."""
    if not hasattr(model, "load_pretrained"):
        raise ValueError(f"{path}: .npz weights need a timm VisionTransformer, got {type(model).__name__}")
    try:
        model.load_pretrained(str(path))
    except KeyError as err:
        raise ValueError(f"{path}: the .npz file lacks the array {err} that {type(model).__name__} needs") from err
