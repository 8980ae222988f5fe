"""What the peft methods (LoRA, IA3) share: their run files and how a run of one is loaded back. The
``Trainer`` saves them (peft's ``save_pretrained``: the adapter only) and resumes them."""

from __future__ import annotations

from pathlib import Path

from torch import nn
from yacs.config import CfgNode

PEFT_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
PEFT_FILES = ("adapter_config.json",)


def trainable_dtype_is_fp32(cfg: CfgNode) -> bool:
    """peft's own fp32 adapters on a half-precision base (``MODEL.TRAINABLE_DTYPE float32``)."""
    return cfg.MODEL.TRAINABLE_DTYPE == "float32"


def load_peft_run(cfg: CfgNode, run_dir: Path, base_matched: bool) -> nn.Module:
    """The base model with the run's peft adapter."""
    from peft import PeftModel

    from ..model import load_base_model

    return PeftModel.from_pretrained(load_base_model(cfg), str(run_dir))


# The registration fields every peft method shares: its run files and how a run of it loads back.
PEFT_RUN_FIELDS = {"run_weights": PEFT_WEIGHTS, "run_files": PEFT_FILES, "load": load_peft_run}
