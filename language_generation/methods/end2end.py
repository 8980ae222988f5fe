"""Full fine-tuning: every weight of the base model trains; a run holds the whole model (the ``Trainer``'s
``save_pretrained``)."""

from __future__ import annotations

from pathlib import Path

from torch import nn
from transformers import PreTrainedModel
from yacs.config import CfgNode

from .registry import TransferMethod, register_transfer


def _build(base: PreTrainedModel, cfg: CfgNode) -> nn.Module:
    for p in base.parameters():
        p.requires_grad_(True)
    return base


def _load(cfg: CfgNode, run_dir: Path, base_matched: bool) -> nn.Module:
    """The tuned model itself, from the run folder."""
    from ..model import load_base_model, with_model_path

    return load_base_model(with_model_path(cfg, run_dir))


register_transfer(
    TransferMethod(
        name="end2end",
        build=_build,
        lr_grid=(3e-4, 1e-4, 3e-5),
        table_order=5,
        description="full fine-tuning: every weight trains",
        run_weights=("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"),
        run_files=("config.json", "generation_config.json"),
        load=_load,
        whole_model=True,
    )
)
