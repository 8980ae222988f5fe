"""Models for visual classification: timm backbones adapted by one transfer method, plus the task head."""

from .build import build_model
from .transfer import TRANSFER_METHODS, get_transfer_method
from .transfer_model import TransferModel

__all__ = ["TRANSFER_METHODS", "TransferModel", "build_model", "get_transfer_method"]
