"""Dataset layouts, one file each (see :mod:`.base`).

A new layout is a new file here defining a ``Layout`` subclass with ``@register_layout``, imported below.
"""

from . import fgvc, imagefolder, vtab  # noqa: F401  (registers the layouts)
from .base import LAYOUTS, Layout, Splits, get_layout, register_layout

__all__ = ["LAYOUTS", "Layout", "Splits", "get_layout", "register_layout"]
