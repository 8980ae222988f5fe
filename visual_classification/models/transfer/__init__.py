"""Transfer methods, one small module each, registered by name (``MODEL.TRANSFER_TYPE``)."""

from . import lora, plain, prompt, toast  # noqa: F401  (registration)
from .registry import TRANSFER_METHODS, TransferMethod, get_transfer_method, register_transfer

__all__ = ["TRANSFER_METHODS", "TransferMethod", "get_transfer_method", "register_transfer"]
