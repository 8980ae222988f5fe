"""Models for visual classification: timm backbones adapted by one transfer method, plus the task head.

The package itself holds only the method registry (torch-free); the models are in ``build`` and
``transfer_model``.
"""

from .transfer import TRANSFER_METHODS, TransferMethod, get_transfer_method, register_transfer

__all__ = ["TRANSFER_METHODS", "TransferMethod", "get_transfer_method", "register_transfer"]
