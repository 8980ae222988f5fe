"""The vision method registration: everything the rest of the vision code asks about a transfer method.

Torch-free, so that ``train --help`` and the config (keys, defaults, ranges) answer before torch loads: a
method file keeps torch, timm and peft inside its ``build``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from toast.registry import Registry
from toast.registry import TransferMethod as SharedTransferMethod

if TYPE_CHECKING:
    from torch import nn
    from yacs.config import CfgNode

    from ..transfer_model import TransferModel

    # Builds the method's model from a loaded backbone and a fresh head.
    Builder = Callable[[nn.Module, nn.Module, CfgNode, str], TransferModel]

HEAD_PREFIX = "head."  # the task head's tensors: they always train and are always saved


@dataclass(frozen=True)
class CacheKind:
    """A frozen prefix that one forward of the frozen backbone gives every adapter alike, so it can be cached.

    Attributes:
        name: how caches and logs name it (the first part of a cache's key).
        config_key: the boolean config key that turns its cache on.
        what: what it is, for error messages.
    """

    name: str
    config_key: str
    what: str


PRE_LOGITS = CacheKind("pre_logits", "DATA.CACHE_FEATURES", "the pooled features the head reads")
FIRST_PASS = CacheKind(
    "first_pass", "MODEL.TOAST.CACHE_FIRST_PASS", "all tokens of a first pass, after the final norm"
)
CACHE_KINDS = (PRE_LOGITS, FIRST_PASS)


def _adds_nothing(name: str) -> bool:
    return False


@dataclass(frozen=True, kw_only=True)
class TransferMethod(SharedTransferMethod):
    """One transfer type: the shape both halves share (:class:`toast.registry.TransferMethod`), plus what only the
    vision half needs.

    Attributes:
        build: ``build(backbone, head, cfg, backbone_name) -> TransferModel`` (a ``Builder``).
        trains: ``trains(param_name) -> bool`` for parameters outside the head (the head always trains).
        added: ``added(tensor_name) -> bool`` for tensors outside the head that the method adds to the backbone:
            saved in the adapter whether they train or not.
        model_types: the original's ``MODEL.TYPE`` values this method may be combined with.
        cache: the frozen prefix its runs can cache (``None``: its backbone's output depends on what trains).
        pretunes: ``pretune`` trains this method's top-down path.
        own_data_recipe: ``{KEY: value}`` applied on a user's own folder (a layout with ``own_data``) when
            ``SOLVER.OPTIMIZER`` is ``auto``: the method's best known settings where no paper protocol fixes them.
    """

    trains: Callable[[str], bool]
    added: Callable[[str], bool] = _adds_nothing
    model_types: tuple[str, ...] = ("vit_bottom_up",)
    cache: CacheKind | None = None
    pretunes: bool = False
    own_data_recipe: Mapping[str, Any] = field(default_factory=dict)

    def mark_trainable(self, model: nn.Module) -> None:
        for name, param in model.named_parameters():
            param.requires_grad_(name.startswith(HEAD_PREFIX) or self.trains(name))

    def is_added(self, name: str) -> bool:
        """Whether tensor ``name`` is not part of the pretrained backbone (the head, or what the method adds)."""
        return name.startswith(HEAD_PREFIX) or self.added(name)


def backbone_as_is(transfer_type: str) -> Builder:
    """A builder for methods that leave the backbone's forward as it is and only choose what trains."""

    def build(backbone: nn.Module, head: nn.Module, cfg: CfgNode, backbone_name: str) -> TransferModel:
        from ..transfer_model import TransferModel

        return TransferModel(backbone, head, backbone_name=backbone_name, transfer_type=transfer_type)

    return build


TRANSFER_METHODS: Registry[TransferMethod] = Registry("MODEL.TRANSFER_TYPE", TransferMethod)


# Makes a method a ``MODEL.TRANSFER_TYPE`` choice of every command of this half; a name taken twice stops.
register_transfer = TRANSFER_METHODS.register
# The method registered under a name or alias; an unknown name stops, listing the choices.
get_transfer_method = TRANSFER_METHODS.lookup
