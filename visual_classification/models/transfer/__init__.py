"""Transfer methods, one file each, registered by name (``MODEL.TRANSFER_TYPE``); see ``registry``.

Importing this package registers the built-in methods and loads no torch.
"""

from . import bias, end2end, linear, lora, prompt, toast, toast_lite  # noqa: F401  (registration)
from .registry import TRANSFER_METHODS, TransferMethod, get_transfer_method, register_transfer

__all__ = ["TRANSFER_METHODS", "TransferMethod", "get_transfer_method", "register_transfer"]
