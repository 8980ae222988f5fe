"""One training loop for every transfer type: train, evaluate each epoch, keep the best on validation.

The best epoch is chosen on the validation split only; test accuracy is reported at that epoch and at
the last one. A killed run resumes from ``last.pt`` and ends with the same numbers (seeded, on the CPU).
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm
from yacs.config import CfgNode

from toast import save_adapter

from ..data import TaskData
from ..models import TransferModel
from ..plots import plot_curves
from . import run_files as rf
from .distributed import all_reduce_mean, barrier, dist_world, gather_concat, is_main
from .metrics import classification_metrics
from .optim import Schedule, build_optimizer

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Loaders:
    train: DataLoader
    val: DataLoader | None
    test: DataLoader | None
    generator: torch.Generator


def _eval_loader(dataset, cfg: CfgNode, batch: int, rank: int, world: int) -> DataLoader | None:
    if dataset is None:
        return None
    shard = torch.utils.data.Subset(dataset, list(range(rank, len(dataset), world)))  # no padding duplicates
    return DataLoader(
        shard, batch_size=batch, shuffle=False, num_workers=cfg.DATA.NUM_WORKERS, pin_memory=torch.cuda.is_available()
    )


def build_loaders(data: TaskData, cfg: CfgNode, rank: int, world: int) -> Loaders:
    if cfg.DATA.BATCH_SIZE % world:
        raise ValueError(f"DATA.BATCH_SIZE={cfg.DATA.BATCH_SIZE} is not divisible by the {world} processes")
    batch = cfg.DATA.BATCH_SIZE // world
    generator = torch.Generator()
    sampler = DistributedSampler(
        data.train, num_replicas=world, rank=rank, shuffle=True, seed=cfg.SEED, drop_last=world > 1
    )
    train = DataLoader(
        data.train,
        batch_size=batch,
        sampler=sampler,
        num_workers=cfg.DATA.NUM_WORKERS,
        pin_memory=torch.cuda.is_available(),
        drop_last=False,
        generator=generator,
        persistent_workers=False,
    )
    return Loaders(
        train,
        _eval_loader(data.val, cfg, batch, rank, world),
        _eval_loader(data.test, cfg, batch, rank, world),
        generator,
    )


class Trainer:
    """Runs ``SOLVER.TOTAL_EPOCH`` epochs of ``model`` on ``data``, writing everything into ``out``."""

    def __init__(
        self,
        cfg: CfgNode,
        model: TransferModel,
        data: TaskData,
        out: Path,
        device: torch.device,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.cfg, self.data, self.out, self.device = cfg, data, out, device
        self.model = model.to(device)
        self.net = (
            DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
            if world > 1
            else model
        )
        self.loaders = build_loaders(data, cfg, rank, world)
        self.optimizer = build_optimizer(model, cfg)
        self.schedule = Schedule(self.optimizer, cfg, len(self.loaders.train))
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if device.type == "cuda" and cfg.AMP
            else contextlib.nullcontext()
        )
        self.start_epoch = 0
        self.lr_factor = 0.0
        self.best = {"val_top1": -math.inf, "epoch": -1}

    # -- state -----------------------------------------------------------------------------------------
    def _state(self, epoch: int) -> dict:
        return {
            "epoch": epoch,
            "adapter": {k: v.detach().cpu() for k, v in self.model.adapter_state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "best_val_top1": float(self.best["val_top1"]),
            "best_epoch": int(self.best["epoch"]),
        }

    def resume(self) -> None:
        state = rf.load_checkpoint(self.out / rf.LAST)
        own = self.model.adapter_state_dict()
        if set(state["adapter"]) != set(own):
            raise ValueError(f"{self.out / rf.LAST} does not match this model's trainable tensors")
        with torch.no_grad():
            for name, tensor in state["adapter"].items():
                own[name].copy_(tensor)
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.start_epoch = state["epoch"]
        self.best = {"val_top1": state["best_val_top1"], "epoch": state["best_epoch"]}
        if is_main():
            rf.truncate_metrics(self.out, self.start_epoch)
        logger.info("resumed from %s at epoch %d", self.out / rf.LAST, self.start_epoch)

    # -- loops -----------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> float:
        self.net.train()
        self.loaders.train.sampler.set_epoch(epoch)
        self.loaders.train.generator.manual_seed(self.cfg.SEED * 1000 + epoch)
        total, count, recon_total, started = 0.0, 0, 0.0, time.perf_counter()
        bar = tqdm(
            self.loaders.train,
            desc=f"epoch {epoch + 1}/{self.cfg.SOLVER.TOTAL_EPOCH}",
            leave=False,
            disable=not is_main(),
            dynamic_ncols=True,
        )
        for it, (images, labels) in enumerate(bar):
            lr_factor = self.lr_factor = self.schedule.apply(epoch, it)
            images, labels = images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
            with self.autocast:
                logits = self.net(images)
            loss = F.cross_entropy(logits.float(), labels)
            first = getattr(self.model, "first_pass_logits", None)
            if first is not None:  # AbSViT's objective: the mean over both passes
                loss = 0.5 * (loss + F.cross_entropy(first.float(), labels))
            recon = getattr(self.model, "recon_loss", None)
            if recon is not None:
                loss = loss + recon
                recon_total += recon.item() * len(labels)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss became {loss.item()} at epoch {epoch + 1}, iteration {it + 1}; lower SOLVER.BASE_LR "
                    f"(now {self.cfg.SOLVER.BASE_LR}) or check the data"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.SOLVER.GRAD_CLIP > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.SOLVER.GRAD_CLIP)
            self.optimizer.step()
            total, count = total + loss.item() * len(labels), count + len(labels)
            bar.set_postfix(loss=f"{total / count:.4f}", lr=f"{self.cfg.SOLVER.BASE_LR * lr_factor:.2e}")
            if (it + 1) % self.cfg.SOLVER.LOG_EVERY_N == 0:
                logger.info(
                    "epoch %d iter %d/%d: loss %.4f", epoch + 1, it + 1, len(self.loaders.train), total / count
                )
        self.images_per_second = all_reduce_mean(count / (time.perf_counter() - started)) * dist_world()
        self.recon_mean = all_reduce_mean(recon_total / max(count, 1)) if recon_total else None
        return all_reduce_mean(total / max(count, 1))

    @torch.no_grad()
    def evaluate(self, loader: DataLoader | None) -> dict[str, float] | None:
        if loader is None:
            return None
        self.model.eval()
        logits, targets = [], []
        for images, labels in loader:
            with self.autocast:
                logits.append(self.model(images.to(self.device)).float().cpu())
            targets.append(labels)
        return classification_metrics(gather_concat(torch.cat(logits)), gather_concat(torch.cat(targets)))

    def fit(self) -> dict:
        cfg, out = self.cfg, self.out
        start = time.time()
        for epoch in range(self.start_epoch, cfg.SOLVER.TOTAL_EPOCH):
            train_loss = self.train_epoch(epoch)
            val, test = self.evaluate(self.loaders.val), self.evaluate(self.loaders.test)
            lr = self.cfg.SOLVER.BASE_LR * self.lr_factor  # the non-head learning rate at the epoch's end
            record = {
                "epoch": epoch,
                "train_loss": train_loss,
                "recon_loss": self.recon_mean,  # RECON_COEF × R, averaged over the epoch (None when off)
                "lr": lr,
                "val": val,
                "test": test,
                "train_images_per_s": round(self.images_per_second, 1),
            }
            if self.device.type == "cuda":
                record["peak_mem_mib"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20)
            improved = val is not None and val["top1"] > self.best["val_top1"]
            if improved or (val is None and epoch == cfg.SOLVER.TOTAL_EPOCH - 1):
                self.best = {"val_top1": val["top1"] if val else math.nan, "epoch": epoch}
            if is_main():
                logger.info(
                    "epoch %d: train loss %.4f | val %s | test %s", epoch + 1, train_loss, _fmt(val), _fmt(test)
                )
                rf.append_metrics(out, record)
                if self.best["epoch"] == epoch:
                    save_adapter(self.model, out / rf.BEST, {**self.model.adapter_config(), "epoch": epoch})
                if cfg.SAVE_LAST:
                    rf.save_checkpoint(out / rf.LAST, self._state(epoch + 1))
                plot_curves(out / rf.METRICS, out / rf.CURVES)
            barrier()
        return self._results(time.time() - start)

    def _results(self, seconds: float) -> dict:
        history = rf.read_metrics(self.out) if is_main() else []
        best_epoch = self.best["epoch"]
        at_best = next((r for r in history if r["epoch"] == best_epoch), None)
        last = history[-1] if history else None
        trainable, total = self.model.parameter_counts()

        def top1(record, split):
            return record[split]["top1"] if record and record.get(split) else None

        return {
            "task": self.data.name,
            "transfer_type": self.model.transfer_type,
            "backbone": self.model.backbone_name,
            "best_val_top1": top1(at_best, "val"),
            "best_epoch": best_epoch + 1,
            "test_top1": top1(at_best, "test"),
            "final_val_top1": top1(last, "val"),
            "final_test_top1": top1(last, "test"),
            "test_metrics_at_best": at_best.get("test") if at_best else None,
            "trainable_params": trainable,
            "total_params": total,
            "seconds": round(seconds, 1),
            "epochs": len(history),
        }


def _fmt(metrics: dict | None) -> str:
    return "-" if metrics is None else " ".join(f"{k} {v:.2f}" for k, v in metrics.items())
