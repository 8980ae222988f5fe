"""LoRA (Hu et al. 2021) through ``peft``: rank-r updates on ``MODEL.LORA.TARGETS`` (the original's baseline:
rank 4 on q/k/v/o)."""

from __future__ import annotations

from torch import nn
from transformers import PreTrainedModel
from yacs.config import CfgNode

from runkit.ranges import Range
from toast.registry import ConfigKey

from .peft_runs import PEFT_RUN_FIELDS, trainable_dtype_is_fp32
from .registry import TransferMethod, register_transfer


def _build(base: PreTrainedModel, cfg: CfgNode) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    lora = cfg.MODEL.LORA
    config = LoraConfig(
        r=lora.RANK,
        lora_alpha=lora.ALPHA,
        lora_dropout=lora.DROPOUT,
        target_modules=list(lora.TARGETS),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(base, peft_config=config, autocast_adapter_dtype=trainable_dtype_is_fp32(cfg))


CONFIG_KEYS = (
    ConfigKey("MODEL.LORA.RANK", 4, "rank of each update", Range("MODEL.LORA.RANK", low=1)),
    ConfigKey(
        "MODEL.LORA.ALPHA",
        1.0,
        "the update is scaled by alpha / rank",
        Range("MODEL.LORA.ALPHA", low=0.0, low_open=True, note="the update is scaled by alpha / rank"),
    ),
    ConfigKey(
        "MODEL.LORA.DROPOUT",
        0.0,
        "dropout on the LoRA input",
        Range("MODEL.LORA.DROPOUT", low=0.0, high=1.0, high_open=True),
    ),
    ConfigKey(
        "MODEL.LORA.TARGETS",
        ["q_proj", "k_proj", "v_proj", "o_proj"],
        "module-name suffixes that get an update (peft target_modules)",
    ),
)

register_transfer(
    TransferMethod(
        name="lora",
        build=_build,
        config_keys=CONFIG_KEYS,
        lr_grid=(3e-2, 1e-2, 3e-3),
        table_order=3,
        description="LoRA through peft on MODEL.LORA.TARGETS",
        **PEFT_RUN_FIELDS,
    )
)
