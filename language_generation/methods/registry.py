"""The language half's transfer methods are registered by name (``MODEL.TRANSFER_TYPE``); a registration owns
every fact the rest of the code asks about its method: how it builds, how a run of it is saved and loaded back,
which files a run holds, its config keys, lr grid and table place. Torch is not imported here: the config is
built from the registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from toast.registry import Registry
from toast.registry import TransferMethod as SharedTransferMethod

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedModel
    from yacs.config import CfgNode

# Builds the method's model from the loaded base model and the config, setting ``requires_grad`` on every tensor.
Builder = Callable[["PreTrainedModel", "CfgNode"], "nn.Module"]
# Loads a finished run: ``load(cfg, run_dir, base_matched)``; ``base_matched``: MODEL.NAME_OR_PATH was found to
# hold, by content, the base model the run was trained on (so a check of the base's name is not needed).
Loader = Callable[["CfgNode", Path, bool], "nn.Module"]


@dataclass(frozen=True, kw_only=True)
class OwnTensors:
    """How a method that saves only its own tensors writes and reads them. Every process gathers
    :attr:`state` (ZeRO-3 partitions, FSDP2 shards: only these tensors, never the whole model), then the main
    process writes them; checkpoints are resumed through :attr:`read`.

    Attributes:
        state: ``state(model) -> {name: tensor}``, the tensors to save, as the model holds them.
        write: ``write(model, folder, state)``, with ``state`` gathered whole on the CPU.
        read: ``read(model, folder)``, loading them back into a model the method built.
    """

    state: Callable[[nn.Module], dict[str, torch.Tensor]]
    write: Callable[[nn.Module, Path, dict[str, torch.Tensor]], None]
    read: Callable[[nn.Module, Path], None]


@dataclass(frozen=True, kw_only=True)
class TransferMethod(SharedTransferMethod):
    """One transfer type (the shape the vision half shares, :class:`toast.registry.TransferMethod`, plus what
    only the language half needs).

    Attributes:
        build: ``build(base, cfg) -> model`` (a :data:`Builder`).
        run_weights: the weight files a run of it writes; a finished run holds one of them.
        run_files: the other files its runs hold beside the weights (their configs).
        own_tensors: how it saves and resumes only its own tensors; None: the ``Trainer`` saves the model (a peft
            adapter through ``save_pretrained``, or the whole model) and resumes it.
        load: how a finished run is loaded back (a :data:`Loader`); None: built from the config, then
            ``own_tensors.read`` from the run folder.
        whole_model: every weight trains, so a run holds the whole model: it loads (weights and config) from the
            run folder, not from the base, and on a half-precision base with ``MODEL.TRAINABLE_DTYPE float32`` the
            weights are held in float32 (master weights).
        has_top_down: it trains a top-down path (what pre-tuning trains).
    """

    run_weights: tuple[str, ...]
    run_files: tuple[str, ...] = ()
    own_tensors: OwnTensors | None = None
    load: Loader | None = None
    whole_model: bool = False
    has_top_down: bool = False

    def __post_init__(self) -> None:
        if self.load is None and self.own_tensors is None:
            raise ValueError(f"transfer method {self.name!r}: give load, or own_tensors to load its runs with")

    def load_run(self, cfg: CfgNode, run_dir: Path, base_matched: bool) -> nn.Module:
        """The model of the finished run in ``run_dir``."""
        if self.load is not None:
            return self.load(cfg, run_dir, base_matched)
        from ..model import build_model

        model = build_model(cfg)
        self.own_tensors.read(model, run_dir)
        return model


TRANSFER_METHODS: Registry[TransferMethod] = Registry("MODEL.TRANSFER_TYPE", TransferMethod)


# Makes a method a ``MODEL.TRANSFER_TYPE`` choice of every command of this half; a name taken twice stops.
register_transfer = TRANSFER_METHODS.register
# The method registered under a name or alias; an unknown name stops, listing the choices.
get_transfer_method = TRANSFER_METHODS.lookup


def weight_files() -> tuple[str, ...]:
    """Every registered method's weight files (a checkpoint or finished run holds one of them)."""
    return tuple(dict.fromkeys(name for m in TRANSFER_METHODS.values() for name in m.run_weights))


def method_files() -> tuple[str, ...]:
    """Every registered method's files: weights and the configs beside them."""
    return tuple(dict.fromkeys(name for m in TRANSFER_METHODS.values() for name in (*m.run_weights, *m.run_files)))
