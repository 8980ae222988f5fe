"""The language side's transfer methods, registered by name (``MODEL.TRANSFER_TYPE``): a new method goes here.

A method says how it turns the loaded base model into the model that trains (and which tensors train),
and which files a finished run of it holds (``generate --adapter RUN_DIR`` checks for one of them).
The vision side registers its methods the same way (``visual_classification/models/transfer/``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn
from transformers import PreTrainedModel
from yacs.config import CfgNode

from toast.registry import Registry
from toast.registry import TransferMethod as SharedTransferMethod

from .toast_policy import attach_toast


@dataclass(frozen=True)
class TransferMethod(SharedTransferMethod):
    """One transfer type (the shape the vision half shares, :class:`toast.registry.TransferMethod`, plus
    what only the language half needs).

    Attributes:
        name: the ``MODEL.TRANSFER_TYPE`` value.
        build: ``build(base, cfg) -> model`` (a :data:`Builder`): installs the method into the loaded base
            model and sets ``requires_grad`` on every parameter.
        run_weights: the files a finished run writes; one of them must be in a run folder.
    """

    run_weights: tuple[str, ...]


# Builds the method's model from the loaded base model and the config.
Builder = Callable[[PreTrainedModel, CfgNode], nn.Module]


TRANSFER_METHODS: Registry[TransferMethod] = Registry("MODEL.TRANSFER_TYPE")


def register_transfer(method: TransferMethod) -> TransferMethod:
    return TRANSFER_METHODS.register(method)


def get_transfer_method(name: str) -> TransferMethod:
    """The method named ``name`` (or an alias, e.g. ``full`` for ``end2end``); unknown names list the choices."""
    return TRANSFER_METHODS.lookup(name)


def _lora(base: PreTrainedModel, cfg: CfgNode) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    lora = cfg.MODEL.LORA
    return get_peft_model(
        base,
        autocast_adapter_dtype=cfg.MODEL.TRAINABLE_DTYPE == "float32",  # peft's own fp32 adapters
        peft_config=LoraConfig(
            r=lora.RANK,
            lora_alpha=lora.ALPHA,
            lora_dropout=lora.DROPOUT,
            target_modules=list(lora.TARGETS),
            task_type="CAUSAL_LM",
        ),
    )


def _ia3(base: PreTrainedModel, cfg: CfgNode) -> nn.Module:
    """peft's IA3: learned rescaling of the keys, values and the MLP's down-projection input."""
    from peft import IA3Config, get_peft_model

    config = IA3Config(
        task_type="CAUSAL_LM", target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"]
    )
    return get_peft_model(base, config, autocast_adapter_dtype=cfg.MODEL.TRAINABLE_DTYPE == "float32")


def _end2end(base: PreTrainedModel, cfg: CfgNode) -> nn.Module:
    for p in base.parameters():
        p.requires_grad_(True)
    return base


_ADAPTER = ("adapter.safetensors",)
# TOAST: the top-down path (MODEL.TOAST.TRAIN says which parts train) steering a frozen base.
register_transfer(TransferMethod(name="toast", build=attach_toast, run_weights=_ADAPTER))
# TOAST-Lite: rank-r updates of A_i and B_i, and p.
register_transfer(TransferMethod(name="toast-lite", build=attach_toast, run_weights=_ADAPTER))
# LoRA through peft on MODEL.LORA.TARGETS.
register_transfer(
    TransferMethod(name="lora", build=_lora, run_weights=("adapter_model.safetensors", "adapter_model.bin"))
)
# IA3 through peft (k, v and the MLP's down projection): the other peft baseline users pick.
register_transfer(
    TransferMethod(name="ia3", build=_ia3, run_weights=("adapter_model.safetensors", "adapter_model.bin"))
)
# Full fine-tuning; "full" is the name earlier configs and runs use.
register_transfer(
    TransferMethod(
        name="end2end",
        build=_end2end,
        run_weights=("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"),
        aliases=("full",),
    )
)
