"""The frozen prefix: what every adapter of a model computes alike from a batch, and where it comes from.

A method's registration names the prefix it can cache (``TransferMethod.cache``, a ``CacheKind``); the strategy
registered here for that kind knows what the frozen backbone computes for it, how a cache of it replaces the
datasets, and how a batch then reaches the model. The prefix comes from a cache (computed once per image,
turned on by the kind's config key), from the images of each batch, or not at all (the backbone trains, or the
method has no such prefix). One object answers for training, evaluation and the sweep that tests the last and
the best-validation adapters on one prefix, so the three cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import Dataset
from yacs.config import CfgNode

from ..config import cache_asked, check_protocol_keys
from ..models.transfer import TRANSFER_METHODS
from ..models.transfer.registry import FIRST_PASS, PRE_LOGITS, CacheKind
from . import feature_cache as fc


def _backbone_frozen(model: nn.Module) -> bool:
    return not any(p.requires_grad for p in model.backbone.parameters())


class PrefixStrategy:
    """How one kind of frozen prefix is computed, cached and fed; subclasses fill in each step."""

    kind: CacheKind
    loader_workers: int | None = None  # loader workers over its cached splits (None: DATA.NUM_WORKERS)

    def available(self, model: nn.Module) -> bool:
        """Whether ``model`` has this prefix (its backbone is frozen and its forward can take it)."""
        raise NotImplementedError

    def compute(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """What the frozen backbone gives every adapter alike for ``images`` (what a cache stores)."""
        raise NotImplementedError

    def cached_module(self, model: nn.Module) -> nn.Module:
        """What a batch of a cached split runs through."""
        return model

    def cached_dataset(self, dataset: Dataset, features: torch.Tensor) -> Dataset:
        """The split's dataset once its cache exists."""
        raise NotImplementedError

    def cached_prefix(self, batch, rows: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        """A batch's prefix read from the cache (``rows``: the split's cache)."""
        raise NotImplementedError

    def run_cached(self, module: nn.Module, batch, rows: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        """A batch of a cached split through ``module`` (the model or :meth:`cached_module`, maybe DDP-wrapped)."""
        raise NotImplementedError

    def adapter_logits(self, model: nn.Module, batch, prefix: torch.Tensor, device: torch.device) -> torch.Tensor:
        """What the trained part of ``model`` makes of a batch's prefix."""
        raise NotImplementedError


class PreLogitsPrefix(PrefixStrategy):
    """The pooled features the head reads: a cache of them replaces the datasets, and the head trains alone."""

    kind = PRE_LOGITS
    loader_workers = 0  # rows of a tensor: nothing to decode

    def available(self, model: nn.Module) -> bool:
        return _backbone_frozen(model)

    @torch.no_grad()
    def compute(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return model.backbone.forward_head(model.backbone.forward_features(images), pre_logits=True)

    def cached_module(self, model: nn.Module) -> nn.Module:
        return fc.HeadOnly(model.head)

    def cached_dataset(self, dataset: Dataset, features: torch.Tensor) -> Dataset:
        return fc.FeatureDataset(features, dataset.labels)

    def cached_prefix(self, batch, rows: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        return batch[0].to(device, non_blocking=True).float()

    def run_cached(self, module: nn.Module, batch, rows: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        return module(self.cached_prefix(batch, rows, device))

    def adapter_logits(self, model: nn.Module, batch, prefix: torch.Tensor, device: torch.device) -> torch.Tensor:
        return model.head(prefix)


class FirstPassPrefix(PrefixStrategy):
    """A first pass's tokens after the final norm (TOAST's pass 1): the model takes them and skips that pass."""

    kind = FIRST_PASS

    def available(self, model: nn.Module) -> bool:
        return getattr(model, "accepts_first_pass", False) and _backbone_frozen(model)

    @torch.no_grad()
    def compute(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return model.backbone.forward_features(images)

    def cached_dataset(self, dataset: Dataset, features: torch.Tensor) -> Dataset:
        return fc.RowsDataset(dataset)

    def cached_prefix(self, batch, rows: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        return rows[batch[2]].to(device, torch.float32, non_blocking=True)

    def run_cached(self, module: nn.Module, batch, rows: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        return module(batch[0].to(device, non_blocking=True), first_pass=self.cached_prefix(batch, rows, device))

    def adapter_logits(self, model: nn.Module, batch, prefix: torch.Tensor, device: torch.device) -> torch.Tensor:
        return model(batch[0].to(device), first_pass=prefix)


PREFIX_STRATEGIES: dict[str, PrefixStrategy] = {s.kind.name: s for s in (PreLogitsPrefix(), FirstPassPrefix())}


def strategy_for(kind: CacheKind) -> PrefixStrategy:
    """The strategy registered for ``kind``."""
    if kind.name not in PREFIX_STRATEGIES:
        raise ValueError(f"no frozen-prefix strategy for cache kind {kind.name!r}; known: {sorted(PREFIX_STRATEGIES)}")
    return PREFIX_STRATEGIES[kind.name]


def cache_strategy(cfg: CfgNode) -> PrefixStrategy | None:
    """The strategy of the cache the config turns on (``None``: none); a config that cannot use it is refused."""
    check_protocol_keys(cfg)
    asked = cache_asked(cfg)
    return strategy_for(asked[0]) if asked else None


@dataclass
class FrozenPrefix:
    """``strategy``: the model's frozen prefix (``None``: it has none); ``cached``: read from a cache rather than
    computed from the batch's images; ``rows``: the cache of each split."""

    strategy: PrefixStrategy | None
    cached: bool = False
    rows: dict[str, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def of(cls, model: nn.Module, cached: PrefixStrategy | None) -> FrozenPrefix:
        """``cached``: the strategy of the configured cache, if any; otherwise the method's own, where available."""
        if cached is not None:
            return cls(cached, cached=True)
        kind = TRANSFER_METHODS.lookup(model.transfer_type).cache
        strategy = strategy_for(kind) if kind is not None else None
        return cls(strategy if strategy is not None and strategy.available(model) else None)

    def logits(self, module: nn.Module, batch, split: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch through ``module`` (the model, or what the cache runs through), the cache used if any."""
        labels = batch[1].to(device, non_blocking=True)
        if self.cached:
            return self.strategy.run_cached(module, batch, self.rows.get(split), device), labels
        return module(batch[0].to(device, non_blocking=True)), labels

    def prefix(self, model: nn.Module, batch, split: str, device: torch.device) -> torch.Tensor:
        """The batch's frozen prefix (from the cache, or computed from its images)."""
        if self.strategy is None:
            raise ValueError("this model has no frozen prefix (its backbone trains, or its method has none)")
        if self.cached:
            return self.strategy.cached_prefix(batch, self.rows.get(split), device)
        return self.strategy.compute(model, batch[0].to(device))  # what the caches store, computed per batch

    def adapter_logits(self, model: nn.Module, batch, prefix: torch.Tensor, device: torch.device) -> torch.Tensor:
        """What the trained part makes of a prefix: TOAST's feedback and pass 2, or the probe's head."""
        return self.strategy.adapter_logits(model, batch, prefix, device)
