"""torchrun support: process group set-up, rank helpers, and gathering evaluation outputs."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from runkit.cli import UserError


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Joins the process group when launched by torchrun; returns (rank, world size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def local_device(requested: str) -> torch.device:
    """DEVICE auto → this process's GPU (LOCAL_RANK) when CUDA is available, else the CPU."""
    if requested not in ("auto", "cuda", "cpu"):
        raise ValueError(f"DEVICE must be auto, cuda or cpu, got {requested!r}")
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError("DEVICE cuda was asked for, but torch sees no CUDA device; pass DEVICE cpu (or auto)")
    index = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def dist_world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def broadcast_object(value):
    """Rank 0's ``value`` on every rank."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_concat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenates each rank's tensor along dim 0 (ranks may hold different lengths)."""
    if not dist.is_initialized():
        return tensor
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, tensor.cpu())
    return torch.cat(parts)


def all_reduce_mean(value: float) -> float:
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64, device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return t.item() / dist.get_world_size()
