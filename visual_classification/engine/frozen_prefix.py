"""The frozen prefix: what every adapter of a model computes alike from a batch, and where it comes from.

TOAST's pass 1 (tokens after the final norm) and the linear probe's pre-logit features depend on the frozen
backbone only. They come from a cache (computed once per image, ``DATA.CACHE_FEATURES`` /
``MODEL.TOAST.CACHE_FIRST_PASS``), from the images of each batch, or not at all (the backbone trains, or the
method has no such prefix). One object answers for training, evaluation and the sweep that tests the last and
the best-validation adapters on one prefix, so the three cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from . import feature_cache as fc


@dataclass
class FrozenPrefix:
    """``kind``: ``fc.FIRST_PASS``, ``fc.PRE_LOGITS`` or ``None``; ``cached``: read from a cache rather than
    computed from the batch's images; ``rows``: a first-pass cache's tokens per split (a pre-logits cache
    replaces the datasets themselves, so its batches already hold the features)."""

    kind: str | None
    cached: bool = False
    rows: dict[str, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def of(cls, model: nn.Module, cache_kind: str | None) -> FrozenPrefix:
        if cache_kind:
            return cls(cache_kind, cached=True)
        if getattr(model, "accepts_first_pass", False):
            frozen = not any(p.requires_grad for p in model.backbone.parameters())
            return cls(fc.FIRST_PASS if frozen else None)
        return cls(fc.PRE_LOGITS if getattr(model, "transfer_type", None) == "linear" else None)

    def logits(self, module: nn.Module, batch, split: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch through ``module`` (the model, or its head on cached features), the cache used if any."""
        inputs = batch[0].to(device, non_blocking=True)
        labels = batch[1].to(device, non_blocking=True)
        if self.cached and self.kind == fc.FIRST_PASS:
            return module(inputs, first_pass=self._rows(batch, split, device)), labels
        if self.cached and self.kind == fc.PRE_LOGITS:
            return module(inputs.float()), labels
        return module(inputs), labels

    def prefix(self, model: nn.Module, batch, split: str, device: torch.device) -> torch.Tensor:
        """The batch's frozen prefix (from the cache, or computed from its images)."""
        if self.kind is None:
            raise ValueError("this model has no frozen prefix (its backbone trains, or its method has none)")
        inputs = batch[0].to(device)
        if self.cached:
            return self._rows(batch, split, device) if self.kind == fc.FIRST_PASS else inputs.float()
        return fc.frozen_features(model, inputs, self.kind)  # what the caches store, computed per batch

    def adapter_logits(self, model: nn.Module, batch, prefix: torch.Tensor, device: torch.device) -> torch.Tensor:
        """What the trained part makes of a prefix: TOAST's feedback and pass 2, or the probe's head."""
        if self.kind == fc.FIRST_PASS:
            return model(batch[0].to(device), first_pass=prefix)
        return model.head(prefix)

    def _rows(self, batch, split: str, device: torch.device) -> torch.Tensor:
        return self.rows[split][batch[2]].to(device, torch.float32, non_blocking=True)
