"""Optimiser and learning-rate schedule, with the original's weight-decay grouping (bugs fixed)."""

from __future__ import annotations

import torch
from timm.scheduler import CosineLRScheduler
from torch import nn
from yacs.config import CfgNode

from ..models.transfer.registry import HEAD_PREFIX
from .probe import build_lbfgs


def _decays(name: str, param: torch.Tensor, prior_decay: bool) -> bool:
    """No decay on biases, norms and other 1-D tensors; the TOAST prompt p decays when PRIOR_DECAY is set."""
    if name.endswith("top_down.prompt"):
        return prior_decay
    return param.ndim > 1


def parameter_groups(model: nn.Module, cfg: CfgNode) -> list[dict]:
    """Groups of trainable tensors by (learning rate, weight decay)."""
    solver = cfg.SOLVER
    groups: dict[tuple[float, float], list[torch.Tensor]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        bare = name.removeprefix("module.")
        lr = solver.BASE_LR * (solver.HEAD_LR_MULT if bare.startswith(HEAD_PREFIX) else 1.0)
        wd = solver.WEIGHT_DECAY if _decays(bare, param, solver.PRIOR_DECAY) else 0.0
        groups.setdefault((lr, wd), []).append(param)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return [{"params": params, "lr": lr, "weight_decay": wd} for (lr, wd), params in groups.items()]


def build_optimizer(model: nn.Module, cfg: CfgNode) -> torch.optim.Optimizer:
    name = cfg.SOLVER.OPTIMIZER
    groups = parameter_groups(model, cfg)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.SOLVER.BASE_LR, momentum=cfg.SOLVER.MOMENTUM)
    if (
        name in ("adamw", "auto")
    ):  # auto: a run with no own-data recipe (see train); the original's custom AdamW: betas (0.9, 0.999), eps 1e-6, decoupled decay
        return torch.optim.AdamW(groups, lr=cfg.SOLVER.BASE_LR, betas=(0.9, 0.999), eps=1e-6)
    if name == "lbfgs":  # the probe's full-batch solver; its L2 term is in the objective (engine/probe.py)
        return build_lbfgs([p for group in groups for p in group["params"]])
    raise ValueError(f"SOLVER.OPTIMIZER must be 'auto', 'sgd', 'adamw' or 'lbfgs', got {name!r}")


class Schedule:
    """Linear warm-up then a half cosine to 0: timm's ``CosineLRScheduler`` (warm-up as a prefix, from lr 0),
    applied per iteration or per epoch. Every group follows its own base lr (the head's is multiplied).

    ``SOLVER.LR_STEP iter`` (default) warms up and decays per iteration, starting at the first step's
    share of the warm-up. ``epoch`` reproduces the original: the factor changes once per epoch and
    epoch 0 trains at lr 0.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: CfgNode, iters_per_epoch: int) -> None:
        mode = cfg.SOLVER.LR_STEP
        if mode not in ("iter", "epoch"):
            raise ValueError(f"SOLVER.LR_STEP must be 'iter' or 'epoch', got {mode!r}")
        self.optimizer = optimizer
        self.per_iter = mode == "iter"
        self.iters_per_epoch = iters_per_epoch
        unit = iters_per_epoch if self.per_iter else 1
        warmup, total = cfg.SOLVER.WARMUP_EPOCH * unit, cfg.SOLVER.TOTAL_EPOCH * unit
        self.scheduler = CosineLRScheduler(
            optimizer,
            t_initial=max(1.0, total - warmup),  # the cosine's length, after the warm-up prefix
            lr_min=0.0,
            warmup_t=warmup,
            warmup_lr_init=0.0,
            warmup_prefix=True,
            t_in_epochs=not self.per_iter,
        )

    def apply(self, epoch: int, iteration: int) -> float:
        """Sets every group's lr for this iteration; returns the factor (lr / base lr) for the logs."""
        if self.per_iter:
            self.scheduler.step_update(epoch * self.iters_per_epoch + iteration + 1)
        else:
            self.scheduler.step(epoch)
        group = self.optimizer.param_groups[0]
        return group["lr"] / group["initial_lr"] if group["initial_lr"] else 0.0
