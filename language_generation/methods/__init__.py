"""Transfer methods, one small module each, registered by name (``MODEL.TRANSFER_TYPE``); a method defined
elsewhere registers through :func:`register_transfer` in the same way."""

from . import end2end, ia3, lora, toast  # noqa: F401  (registration)
from .registry import (
    TRANSFER_METHODS,
    OwnTensors,
    TransferMethod,
    get_transfer_method,
    method_files,
    register_transfer,
    weight_files,
)

__all__ = [
    "TRANSFER_METHODS",
    "OwnTensors",
    "TransferMethod",
    "get_transfer_method",
    "method_files",
    "register_transfer",
    "weight_files",
]
