"""One training loop for every transfer type: train, validate each epoch, keep the best on validation.

The best epoch is chosen on the validation split only; test accuracy is reported at that epoch and at
the last one, which is where the protocol needs it: by default (``SOLVER.TEST_PERIOD 0``) test is
evaluated once after the last epoch, on the last model and on the best-validation adapter (read back
from ``best/``); ``TEST_PERIOD k`` adds every k-th epoch, for curves. The numbers are the same either way.
Epochs are counted from 1 in every file. A killed run resumes from ``last.pt`` and ends with the same
numbers (seeded, on the CPU).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
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

from runkit.runs import is_main_process
from toast.adapter import ADAPTER_WEIGHTS, load_adapter, read_tensors, save_adapter

from ..data import TaskData
from ..models.transfer_model import TransferModel
from ..plots import plot_curves
from . import feature_cache as fc
from . import run_files as rf
from .distributed import all_reduce_mean, barrier, dist_world, gather_concat
from .frozen_prefix import FrozenPrefix, cache_strategy
from .metrics import classification_metrics
from .optim import Schedule, build_optimizer
from .probe import ITERS_PER_EPOCH, choose_decay, full_batch_epoch

logger = logging.getLogger(__name__)
DIVERGENCE_FACTOR = 10.0  # an epoch's train loss this many times the lowest so far: warn that the run diverges


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


def resolve_workers(requested: int) -> int:
    """``DATA.NUM_WORKERS``; -1 = the CPUs this process may use, at most 4 (torch warns above the CPU count)."""
    if requested >= 0:
        return requested
    if requested != -1:
        raise ValueError(f"DATA.NUM_WORKERS must be >= 0, or -1 for the machine's CPUs; got {requested}")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(4, cpus)


def _eval_loader(dataset, batch: int, workers: int, rank: int, world: int) -> DataLoader | None:
    if dataset is None:
        return None
    shard = torch.utils.data.Subset(dataset, list(range(rank, len(dataset), world)))  # no padding duplicates
    return DataLoader(
        shard,
        batch_size=batch,
        shuffle=False,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        generator=torch.Generator(),  # its own seed source: evaluating never moves the global RNG
        persistent_workers=workers > 0,  # started once, not at every evaluation (nothing random to reseed)
    )


def build_loaders(data: TaskData, cfg: CfgNode, rank: int, world: int, workers: int | None = None) -> Loaders:
    """Loaders over ``data``'s splits; ``workers`` overrides ``DATA.NUM_WORKERS`` (0 for cached features)."""
    if cfg.DATA.BATCH_SIZE % world:
        raise ValueError(f"DATA.BATCH_SIZE={cfg.DATA.BATCH_SIZE} is not divisible by the {world} processes")
    batch = cfg.DATA.BATCH_SIZE // world
    workers = resolve_workers(cfg.DATA.NUM_WORKERS) if workers is None else workers
    generator = torch.Generator()
    sampler = DistributedSampler(
        data.train, num_replicas=world, rank=rank, shuffle=True, seed=cfg.SEED, drop_last=world > 1
    )
    train = DataLoader(
        data.train,
        batch_size=batch,
        sampler=sampler,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        drop_last=False,
        generator=generator,
        # Workers started once when nothing random runs in them; with augmentation they restart every
        # epoch, so that the reseeded generator gives each epoch (and a resumed run) its own crops.
        persistent_workers=workers > 0 and fc.random_steps(data.train) == [],
    )
    return Loaders(
        train,
        _eval_loader(data.val, batch, workers, rank, world),
        _eval_loader(data.test, batch, workers, rank, world),
        generator,
    )


PLOT_EVERY_S = 30  # curves.png is redrawn at most this often (and after the last epoch): it costs ~0.3 s


def epoch_due(epoch: int, period: int, total: int) -> bool:
    """Whether 1-based ``epoch`` is evaluated with ``period`` (0 = only the last epoch)."""
    return epoch == total or (period > 0 and epoch % period == 0)


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
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if device.type == "cuda" and cfg.AMP
            else contextlib.nullcontext()
        )
        self.prefix = FrozenPrefix.of(model, cache_strategy(cfg))  # what every adapter computes alike, and how
        self.module: torch.nn.Module = model  # what a batch runs through: the model, or its head on cached features
        if self.prefix.cached:
            data = self._use_cache(data, world)
        self.net = (
            DistributedDataParallel(self.module, device_ids=[device.index] if device.type == "cuda" else None)
            if world > 1
            else self.module
        )
        workers = self.prefix.strategy.loader_workers if self.prefix.cached else None
        self.loaders = build_loaders(data, cfg, rank, world, workers=workers)
        self.optimizer = build_optimizer(model, cfg)
        self.full_batch = cfg.SOLVER.OPTIMIZER == "lbfgs"  # the probe's solver: no mini-batches, no lr schedule
        if self.full_batch and world > 1:
            raise ValueError(
                "SOLVER.OPTIMIZER lbfgs runs in one process (a full-batch probe takes seconds); drop torchrun"
            )
        self.schedule = None if self.full_batch else Schedule(self.optimizer, cfg, len(self.loaders.train))
        self.weight_decay = self._probe_decay() if self.full_batch else cfg.SOLVER.WEIGHT_DECAY
        self.start_epoch = 0
        self.lr_factor = 0.0
        self.best = {"val_top1": -math.inf, "epoch": 0}  # epoch counted from 1; 0 = none yet
        self.best_test: dict | None = None  # the best-validation adapter's test metrics, once evaluated
        self.plotted = -math.inf  # when curves.png was last drawn
        self.lowest_loss = math.inf  # the lowest epoch train loss of this process, for the divergence warning

    # -- caches ----------------------------------------------------------------------------------------
    def _use_cache(self, data: TaskData, world: int) -> TaskData:
        """Computes (or finds) the configured cache for every split and swaps the splits' datasets for it."""
        cfg, strategy = self.cfg, self.prefix.strategy
        compute = fc.CacheComputation(
            self.model,
            strategy,
            fc.DTYPES[cfg.DATA.CACHE_DTYPE],
            max(1, cfg.DATA.BATCH_SIZE // world),
            resolve_workers(cfg.DATA.NUM_WORKERS),
            self.device,
            self.autocast,
        )
        splits = fc.cached_splits(data, cfg, compute, autocast_on=self.device.type == "cuda" and cfg.AMP)
        self.module = strategy.cached_module(self.model)
        self.prefix.rows = splits
        return dataclasses.replace(
            data, **{s: strategy.cached_dataset(getattr(data, s), f) for s, f in splits.items()}
        )

    def _logits(self, module: torch.nn.Module, batch, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Runs one batch (images, cached features, or images with cached pass-1 rows) through ``module``."""
        with self.autocast:
            return self.prefix.logits(module, batch, split, self.device)

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
        """Continues from ``last.pt``; one that lacks what a resume needs is an error naming it and the key."""
        state = rf.load_checkpoint(self.out / rf.LAST)
        try:
            self._restore(state)
        except KeyError as err:
            raise ValueError(
                f"cannot resume from {self.out / rf.LAST}: it lacks {err}; delete it to start the run again"
            ) from err
        if is_main_process():
            rf.truncate_metrics(self.out, self.start_epoch)
        logger.info("resumed from %s after epoch %d", self.out / rf.LAST, self.start_epoch)

    def _restore(self, state: dict) -> None:
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

    # -- loops -----------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> float:
        """Trains epoch ``epoch`` (counted from 0 here: it seeds the sampler and the schedule)."""
        if self.full_batch:
            return self._full_batch_epoch(epoch)
        self.net.train()
        self.loaders.train.sampler.set_epoch(epoch)
        self.loaders.train.generator.manual_seed(self.cfg.SEED * 1000 + epoch)
        total, count, recon_total, started = 0.0, 0, 0.0, time.perf_counter()
        bar = tqdm(
            self.loaders.train,
            desc=f"epoch {epoch + 1}/{self.cfg.SOLVER.TOTAL_EPOCH}",
            leave=False,
            disable=not is_main_process(),
            dynamic_ncols=True,
        )
        for it, batch in enumerate(bar):
            lr_factor = self.lr_factor = self.schedule.apply(epoch, it)
            logits, labels = self._logits(self.net, batch, "train")
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

    def _probe_decay(self) -> float:
        """``SOLVER.PROBE_DECAYS``: the L2 strength chosen on val before training (the probe's features are
        cached, so each candidate is a few seconds); ``SOLVER.WEIGHT_DECAY`` when there is no list or no val."""
        decays, val = list(self.cfg.SOLVER.PROBE_DECAYS), self.loaders.val
        if not decays or val is None:
            if decays:
                logger.warning(
                    "SOLVER.PROBE_DECAYS needs a val split; SOLVER.WEIGHT_DECAY %g is used",
                    self.cfg.SOLVER.WEIGHT_DECAY,
                )
            return self.cfg.SOLVER.WEIGHT_DECAY

        def rows(loader) -> tuple[torch.Tensor, torch.Tensor]:
            dataset = loader.dataset
            dataset = getattr(dataset, "dataset", dataset)  # val: one process's shard of the cached rows (all of them)
            return dataset.features.to(self.device, torch.float32), torch.as_tensor(dataset.labels, device=self.device)

        best, scores = choose_decay(
            self.module, decays, rows(self.loaders.train), rows(val), self.cfg.SOLVER.TOTAL_EPOCH
        )
        listing = ", ".join(f"{decay:g}: {score:.2f}" for decay, score in scores.items())
        logger.info("probe L2 strength chosen on val: %g (val top-1 by strength: %s)", best, listing)
        return best

    def _full_batch_epoch(self, epoch: int) -> float:
        """``SOLVER.OPTIMIZER lbfgs``: the probe's L-BFGS iterations on every cached training row at once."""
        started = time.perf_counter()
        train = self.loaders.train.dataset
        features = train.features.to(self.device, torch.float32)
        labels = torch.as_tensor(train.labels, device=self.device)
        loss = full_batch_epoch(self.module, self.optimizer, features, labels, self.weight_decay)
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"the probe's loss became {loss} at epoch {epoch + 1}; check the cached features for "
                f"non-finite values or raise SOLVER.WEIGHT_DECAY (now {self.weight_decay})"
            )
        self.lr_factor, self.recon_mean = 1.0, None
        self.images_per_second = len(labels) * ITERS_PER_EPOCH / (time.perf_counter() - started)
        return loss

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, float] | None:
        """Metrics of the current model on ``split`` (``"val"`` or ``"test"``); ``None`` when the split is off."""
        loader = getattr(self.loaders, split)
        if loader is None:
            return None
        self.model.eval()
        logits, targets = [], []
        for batch in loader:
            out, labels = self._logits(self.module, batch, split)
            logits.append(out.float().cpu())
            targets.append(labels.cpu())
        return classification_metrics(gather_concat(torch.cat(logits)), gather_concat(torch.cat(targets)))

    @torch.no_grad()
    def evaluate_last_and_best(self, split: str) -> tuple[dict, dict]:
        """Metrics of the current (last) model and of the adapter in ``best/`` in one sweep over ``split``:
        the frozen prefix (TOAST's pass 1, the probe's features) is computed once per batch for both."""
        loader = getattr(self.loaders, split)
        self.model.eval()
        own = self.model.adapter_state_dict()
        last = {name: t.detach().clone() for name, t in own.items()}
        best = read_tensors(self.out / rf.BEST / ADAPTER_WEIGHTS, device=str(self.device))
        if set(best) != set(own):
            raise ValueError(f"{self.out / rf.BEST} does not match this model's trainable tensors")
        logits: dict[str, list] = {"last": [], "best": []}
        targets = []
        try:
            for batch in loader:
                with self.autocast:
                    prefix = self.prefix.prefix(self.model, batch, split, self.device)
                    for name, state in (("last", last), ("best", best)):
                        for key, tensor in state.items():
                            own[key].copy_(tensor)
                        out = self.prefix.adapter_logits(self.model, batch, prefix, self.device)
                        logits[name].append(out.float().cpu())
                targets.append(batch[1])
        finally:  # the live model is the last one again, even when a batch fails (an error, Ctrl-C)
            for key, tensor in last.items():
                own[key].copy_(tensor)
        target = gather_concat(torch.cat(targets))
        return tuple(classification_metrics(gather_concat(torch.cat(logits[n])), target) for n in ("last", "best"))

    def _best_needs_test(self, epoch: int) -> bool:
        """Whether the best-validation adapter (epoch ≠ ``epoch``) still needs its own test evaluation."""
        best, cfg = self.best["epoch"], self.cfg
        return (
            self.loaders.test is not None
            and 1 <= best != epoch
            and not epoch_due(best, cfg.SOLVER.TEST_PERIOD, cfg.SOLVER.TOTAL_EPOCH)
        )

    def warn_if_diverging(self, epoch: int, train_loss: float) -> None:
        """A finite loss that blew up still lets ``best/`` quietly keep an early epoch; say so in the log."""
        lowest, self.lowest_loss = self.lowest_loss, min(self.lowest_loss, train_loss)
        if not (math.isfinite(lowest) and train_loss > DIVERGENCE_FACTOR * lowest):
            return
        why = ""
        if self.recon_mean is not None and self.recon_mean > train_loss / 2:  # the reconstruction term dominates
            why = " (mostly the reconstruction loss: the chain of A_i maps has blown up)"
        logger.warning(
            "epoch %d: train loss %.4g is %.0fx the lowest epoch's (%.4g): the run is diverging%s; lower "
            "SOLVER.BASE_LR (now %g) and look at curves.png",
            epoch, train_loss, train_loss / lowest, lowest, why, self.cfg.SOLVER.BASE_LR,
        )  # fmt: skip

    def fit(self) -> dict:
        cfg, out, total = self.cfg, self.out, self.cfg.SOLVER.TOTAL_EPOCH
        start = time.time()
        for epoch in range(self.start_epoch + 1, total + 1):  # counted from 1
            train_loss = self.train_epoch(epoch - 1)
            self.warn_if_diverging(epoch, train_loss)
            val = self.evaluate("val") if epoch_due(epoch, cfg.SOLVER.EVAL_PERIOD, total) else None
            improved = val is not None and val["top1"] > self.best["val_top1"]
            if improved or (self.loaders.val is None and epoch == total):
                self.best = {"val_top1": val["top1"] if val else math.nan, "epoch": epoch}
            test = None
            if epoch == total and self._best_needs_test(epoch) and self.prefix.strategy:
                test, self.best_test = self.evaluate_last_and_best("test")
            elif epoch_due(epoch, cfg.SOLVER.TEST_PERIOD, total):
                test = self.evaluate("test")
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
            if is_main_process():
                logger.info("epoch %d: train loss %.4f | val %s | test %s", epoch, train_loss, _fmt(val), _fmt(test))
                rf.append_metrics(out, record)
                if self.best["epoch"] == epoch:
                    save_adapter(self.model, out / rf.BEST, {**self.model.adapter_config(), "epoch": epoch})
                if cfg.SAVE_LAST:
                    rf.save_checkpoint(out / rf.LAST, self._state(epoch))
                last_plot = epoch == total and self.best_test is None  # else redrawn with the best's test below
                if last_plot or time.time() - self.plotted > PLOT_EVERY_S:
                    plot_curves(out / rf.METRICS, out / rf.CURVES)
                    self.plotted = time.time()
            barrier()
        self._test_best_adapter()
        return self._results(time.time() - start)

    def _test_best_adapter(self) -> None:
        """Test of the best-validation adapter, when its epoch was not tested in the loop; into metrics.jsonl."""
        if not self._best_needs_test(self.cfg.SOLVER.TOTAL_EPOCH):
            return
        best = self.best["epoch"]
        test = self.best_test
        if test is None:  # a run resumed after its last epoch: the adapter alone
            load_adapter(self.model, self.out / rf.BEST)  # every rank reads it (written by rank 0 before a barrier)
            test = self.evaluate("test")
        logger.info("best-validation adapter (epoch %d): test %s", best, _fmt(test))
        if is_main_process():
            history = rf.read_metrics(self.out)
            for record in history:
                if record["epoch"] == best:
                    record["test"] = test
            rf.write_metrics(self.out, history)
            plot_curves(self.out / rf.METRICS, self.out / rf.CURVES)
        barrier()

    def _results(self, seconds: float) -> dict:
        history = rf.read_metrics(self.out) if is_main_process() else []
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
            "best_epoch": best_epoch,
            "test_top1": top1(at_best, "test"),
            "final_val_top1": top1(last, "val"),
            "final_test_top1": top1(last, "test"),
            "test_metrics_at_best": at_best.get("test") if at_best else None,
            "trainable_params": trainable,
            "total_params": total,
            "seconds": round(seconds, 1),
            "epochs": len(history),
            "weight_decay": self.weight_decay,  # SOLVER.WEIGHT_DECAY, or the probe's strength chosen on val
        }


def _fmt(metrics: dict | None) -> str:
    return "-" if metrics is None else " ".join(f"{k} {v:.2f}" for k, v in metrics.items())
