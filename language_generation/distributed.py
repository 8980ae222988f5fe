"""What a run under ``torchrun`` needs beyond the ``Trainer``: one process decides and writes while the others
wait for its answer; the adapter gathered from ZeRO-3 partitions or FSDP2 ``DTensor`` shards (only its own,
small, tensors, never the whole model); the engine config checked before the model loads; the process
groups torn down at the end, so that every rank exits 0.

Without ``torch.distributed`` started (one plain process) every function here does the plain thing.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
import torch.distributed as dist
from yacs.config import CfgNode

from runkit.runs import is_main_process

from .methods import TRANSFER_METHODS

logger = logging.getLogger(__name__)

T = TypeVar("T")
GATHER_KEY = "zero_optimization.stage3_gather_16bit_weights_on_model_save"


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    """All processes wait here (a no-op for one process)."""
    if is_distributed():
        dist.barrier()


def main_decides(decide: Callable[[], T]) -> T:
    """Rank 0 runs ``decide`` (checking, clearing or writing the run folder); every process gets its answer,
    or the error it raised, once it is done, so that none reads a folder rank 0 is still changing, and all
    choose the same checkpoint."""
    if not is_distributed():
        return decide()
    box: list = [None]
    if is_main_process():
        try:
            box[0] = ("value", decide())
        except Exception as err:  # noqa: BLE001  (handed to every process, raised there)
            box[0] = ("error", err)
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise value
    return value


def end_processes() -> None:
    """Destroys the process group (DeepSpeed's communication runs on torch's) so that no rank aborts at exit with gloo or
    NCCL threads still running ("terminate called without an active exception")."""
    if not is_distributed():
        return
    dist.barrier()
    dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------------
# Partitioned tensors
# ---------------------------------------------------------------------------------------------------


def _whole(t: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    if isinstance(t, DTensor):
        t = t.full_tensor()  # collective: every process gathers
    return t.detach().to("cpu", copy=True)


def gathered_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors`` (a method's own, :attr:`.methods.OwnTensors.state`), whole, on the CPU, in every process (all
    of them must call this).

    Only these tensors are gathered (``deepspeed.zero.GatheredParameters`` for ZeRO-3 partitions,
    ``full_tensor`` for FSDP2 ``DTensor`` shards), so no ZeRO-3 setting about gathering the whole model
    (``stage3_gather_16bit_weights_on_model_save``) matters.
    """
    partitioned = [t for t in tensors.values() if hasattr(t, "ds_id")]
    if not partitioned:
        return {name: _whole(t) for name, t in tensors.items()}
    import deepspeed

    with deepspeed.zero.GatheredParameters(partitioned, modifier_rank=None):
        return {name: _whole(t) for name, t in tensors.items()}


# ---------------------------------------------------------------------------------------------------
# Engine configs
# ---------------------------------------------------------------------------------------------------


def check_engine_config(cfg: CfgNode) -> None:
    """Refuses, before the model loads, an engine config under which the run could not save its result.

    A method that saves its own tensors (TOAST) gathers them (:func:`gathered_state`) under any ZeRO-3
    setting and FSDP2 (not FSDP1, whose flat parameters are not ``DTensor``s). The others (LoRA, full
    fine-tuning) are saved by the ``Trainer`` from the whole gathered model: under ZeRO-3 without
    ``stage3_gather_16bit_weights_on_model_save`` it writes only DeepSpeed's partitioned checkpoint, and
    under FSDP with a sharded state dict no model file at all, so the run folder would hold no weights
    ``generate --adapter`` can read.
    """
    transfer = cfg.MODEL.TRANSFER_TYPE
    fsdp = (
        read_json_option("TRAIN.FSDP_CONFIG", cfg.TRAIN.FSDP_CONFIG)
        if cfg.TRAIN.FSDP and cfg.TRAIN.FSDP_CONFIG
        else {}
    )
    if TRANSFER_METHODS.lookup(transfer).own_tensors is not None:
        if int(fsdp.get("version", 2)) != 2:
            raise ValueError(
                f"TRAIN.FSDP_CONFIG={cfg.TRAIN.FSDP_CONFIG!r}: version {fsdp['version']!r}; {transfer} gathers its "
                'tensors from FSDP2 DTensor shards: set "version": 2 (or leave it out; 2 is transformers\' default)'
            )
        return
    ds = read_json_option("TRAIN.DEEPSPEED", cfg.TRAIN.DEEPSPEED) if cfg.TRAIN.DEEPSPEED else {}
    zero = ds.get("zero_optimization", {})
    if zero.get("stage") == 3 and not zero.get("stage3_gather_16bit_weights_on_model_save", False):
        raise ValueError(
            f"TRAIN.DEEPSPEED={cfg.TRAIN.DEEPSPEED!r}: MODEL.TRANSFER_TYPE {transfer} under ZeRO-3 is saved from the "
            f'whole gathered model; set "{GATHER_KEY.split(".")[-1]}": true in "zero_optimization" ({GATHER_KEY})'
        )
    if fsdp:
        kind = str(fsdp.get("state_dict_type", fsdp.get("fsdp_state_dict_type", "FULL_STATE_DICT")))
        if "FULL_STATE_DICT" not in kind:
            raise ValueError(
                f"TRAIN.FSDP_CONFIG={cfg.TRAIN.FSDP_CONFIG!r}: state_dict_type {kind!r}; MODEL.TRANSFER_TYPE "
                f"{transfer} is saved from a full state dict: set it to FULL_STATE_DICT"
            )


def read_json_option(key: str, value) -> dict:
    """A JSON config option (a file name, or a dict given in code), named when missing or malformed."""
    if isinstance(value, dict):
        return value
    path = Path(value)
    if not path.is_file():
        try:  # accelerate also takes a DeepSpeed config as base64-encoded JSON
            return json.loads(base64.urlsafe_b64decode(value))
        except (ValueError, TypeError):
            raise FileNotFoundError(f"{key}={value!r} does not exist (a JSON file)") from None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{key}={value!r}: not valid JSON ({err})") from err
