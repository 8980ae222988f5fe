"""Linear probing: the backbone frozen, only the task head trains (on pooled features that can be cached)."""

from __future__ import annotations

from toast.registry import ConfigKey

from .registry import PRE_LOGITS, TransferMethod, backbone_as_is, register_transfer

register_transfer(
    TransferMethod(
        name="linear",
        build=backbone_as_is("linear"),
        trains=lambda name: False,
        cache=PRE_LOGITS,
        config_keys=(
            ConfigKey(
                PRE_LOGITS.config_key,
                False,
                "linear probe: the frozen backbone runs once per image; the head trains on its pre-logits",
            ),
        ),
        lr_grid=(1.0, 0.5, 0.25, 0.1, 0.05, 0.025, 0.01),  # not tuned in the original: the PEFT grid
        table_order=10,
        description="linear probe: the task head on the frozen backbone",
    )
)
