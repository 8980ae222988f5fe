"""BitFit (Ben Zaken et al. 2022): every bias of the backbone trains, with the task head."""

from __future__ import annotations

from .registry import TransferMethod, backbone_as_is, register_transfer

register_transfer(
    TransferMethod(
        name="bias",
        build=backbone_as_is("bias"),
        trains=lambda name: name.endswith(".bias"),
        lr_grid=(1.0, 0.5, 0.25, 0.1, 0.05, 0.025, 0.01),  # not tuned in the original: the PEFT grid
        table_order=20,
        description="BitFit: the backbone's biases and the head",
    )
)
