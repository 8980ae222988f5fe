"""IA3 (Liu et al. 2022) through ``peft``: learned rescaling of the keys, the values and the MLP's
down-projection input; the other peft baseline users pick."""

from __future__ import annotations

from torch import nn
from transformers import PreTrainedModel
from yacs.config import CfgNode

from .peft_runs import PEFT_RUN_FIELDS, trainable_dtype_is_fp32
from .registry import TransferMethod, register_transfer


def _build(base: PreTrainedModel, cfg: CfgNode) -> nn.Module:
    from peft import IA3Config, get_peft_model

    config = IA3Config(
        task_type="CAUSAL_LM", target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"]
    )
    return get_peft_model(base, config, autocast_adapter_dtype=trainable_dtype_is_fp32(cfg))


register_transfer(
    TransferMethod(
        name="ia3",
        build=_build,
        lr_grid=(9e-2, 3e-2, 1e-2),
        table_order=4,
        description="IA3 through peft on the k, v and down projections",
        **PEFT_RUN_FIELDS,
    )
)
