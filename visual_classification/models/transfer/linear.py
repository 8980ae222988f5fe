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
        # On a user's folder: the probe solved to convergence (engine/probe.py): mini-batch AdamW stops short of
        # the optimum scikit-learn's logistic regression reaches on the same features.
        own_data_recipe={
            "SOLVER.OPTIMIZER": "lbfgs",
            "SOLVER.PROBE_DECAYS": [1e-4, 1e-3, 1e-2, 1e-1],
            "SOLVER.WARMUP_EPOCH": 0.0,
            "DATA.AUGMENT": False,
            PRE_LOGITS.config_key: True,
            "DATA.CACHE_DTYPE": "float32",
        },
        table_order=10,
        description="linear probe: the task head on the frozen backbone",
    )
)
