"""Transfer methods are registered by name; each says how to build its model and which tensors train."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn
from yacs.config import CfgNode

from toast.registry import Registry
from toast.registry import TransferMethod as SharedTransferMethod

from ..transfer_model import HEAD_PREFIX, TransferModel

# Builds the method's model from a loaded backbone and a fresh head.
Builder = Callable[[nn.Module, nn.Module, CfgNode, str], TransferModel]


@dataclass(frozen=True)
class TransferMethod(SharedTransferMethod):
    """One transfer type (the shape the language half shares, :class:`toast.registry.TransferMethod`, plus
    what only the vision half needs).

    Attributes:
        name: the ``MODEL.TRANSFER_TYPE`` value.
        build: ``build(backbone, head, cfg, backbone_name) -> TransferModel`` (a :data:`Builder`).
        trains: ``trains(param_name) -> bool`` for parameters outside the head (the head always trains).
        model_types: the original's ``MODEL.TYPE`` values this method may be combined with.
    """

    trains: Callable[[str], bool]
    model_types: tuple[str, ...]

    def mark_trainable(self, model: TransferModel) -> None:
        for name, param in model.named_parameters():
            param.requires_grad_(name.startswith(HEAD_PREFIX) or self.trains(name))


TRANSFER_METHODS: Registry[TransferMethod] = Registry("MODEL.TRANSFER_TYPE")


def register_transfer(method: TransferMethod) -> TransferMethod:
    return TRANSFER_METHODS.register(method)


def get_transfer_method(name: str) -> TransferMethod:
    return TRANSFER_METHODS.lookup(name)
