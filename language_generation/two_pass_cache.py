"""The KV cache of a TOAST causal LM: one ``transformers`` cache per pass, held as one ``Cache``.

Pass 1 and pass 2 see the same tokens but different values (pass 2 is steered), so each keeps its own
keys and values, as the original kept 2L cache layers. :class:`TwoPassCache` is a real ``Cache`` that
holds two caches of one kind (as ``EncoderDecoderCache`` holds the self- and cross-attention caches):
``first`` for pass 1, ``second`` for pass 2. Its ``layers`` are the first cache's layers, then the
second's, so the library's own cache methods (beam reordering, cropping, batch selection, reset) act on
both passes at once, and ``get_seq_length`` / ``get_mask_sizes`` read pass 1's layers, which hold the
same positions as pass 2's. With ``StaticCache`` halves it is fixed-size and compileable.
"""

from __future__ import annotations

import torch
from transformers import Cache, DynamicCache, PreTrainedConfig, StaticCache


class TwoPassCache(Cache):
    """Pass 1's cache (``first``) and pass 2's (``second``), both ``DynamicCache`` or both ``StaticCache``.

    Build one with :meth:`dynamic` or :meth:`static`; the TOAST forward also makes one from the empty
    single cache that ``generate`` prepares (:meth:`pair_with_twin`), so ``cache_implementation="static"``
    needs nothing from the caller.
    """

    def __init__(self, first: Cache, second: Cache) -> None:  # no Cache.__init__: ``layers`` is derived
        for name, cache in (("first", first), ("second", second)):
            if type(cache) not in (DynamicCache, StaticCache):
                raise TypeError(
                    f"TwoPassCache.{name} must be a DynamicCache or a StaticCache, got {type(cache).__name__}"
                )
        if type(first) is not type(second):
            raise TypeError(
                f"both passes need the same kind of cache, got {type(first).__name__} and {type(second).__name__}"
            )
        self.first = first
        self.second = second
        self.layer_class_to_replicate = None
        self.offloading = False

    @classmethod
    def dynamic(cls, config: PreTrainedConfig) -> TwoPassCache:
        """Two growing caches (the default of ``generate``)."""
        return cls(DynamicCache(config=config), DynamicCache(config=config))

    @classmethod
    def static(cls, config: PreTrainedConfig, max_cache_len: int) -> TwoPassCache:
        """Two fixed-size caches of ``max_cache_len`` positions (for ``torch.compile`` and CUDA graphs)."""
        return cls(
            StaticCache(config=config, max_cache_len=max_cache_len),
            StaticCache(config=config, max_cache_len=max_cache_len),
        )

    @classmethod
    def pair_with_twin(cls, cache: Cache, config: PreTrainedConfig) -> TwoPassCache:
        """``cache`` for pass 1 and a fresh cache of the same kind and size for pass 2.

        ``generate`` prepares one ``DynamicCache`` or ``StaticCache`` for a model with one pass; the TOAST
        forward pairs it on its first call, and ``generate`` carries the pair on from the returned output.
        """
        if isinstance(cache, TwoPassCache):
            return cache
        filled = cache.get_seq_length()
        if isinstance(filled, torch.Tensor):
            filled = int(filled)
        if filled > 0:
            raise ValueError(
                f"this {type(cache).__name__} already holds {filled} positions of one pass; a TOAST model keeps one "
                "cache per pass: pass the TwoPassCache its own forward returned (or an empty cache)"
            )
        if type(cache) is StaticCache:
            return cls(cache, StaticCache(config=config, max_cache_len=cache.get_max_length()))
        if type(cache) is DynamicCache:
            return cls(cache, DynamicCache(config=config))
        raise TypeError(
            f"a TOAST model pairs a DynamicCache or a StaticCache with a twin for its second pass; got "
            f"{type(cache).__name__} (use cache_implementation 'dynamic' or 'static')"
        )

    @property
    def layers(self) -> list:
        """Pass 1's layers, then pass 2's: what the library's per-layer loops (reorder, crop, reset) walk."""
        return [*self.first.layers, *self.second.layers]

    def passes(self) -> tuple[Cache, Cache]:
        return self.first, self.second

    def update(self, key_states, value_states, layer_idx: int, *args, **kwargs):
        raise RuntimeError(
            "a TwoPassCache is not written layer by layer: each pass of the TOAST forward writes its own cache "
            "(TwoPassCache.first, TwoPassCache.second)"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(first={self.first!r}, second={self.second!r})"
