"""TOAST: Top-Down Attention Steering, the module shared by the vision and language sub-projects.

Reads top to bottom: the top-down module (:mod:`toast.topdown`), value steering (:mod:`toast.steering`),
the two-pass driver (:mod:`toast.two_pass`), adapter files (:mod:`toast.adapter`). Depends on torch only.
"""

from .adapter import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    convert_original_top_down,
    is_original_top_down_key,
    load_adapter,
    load_top_down_state,
    read_adapter_config,
    read_adapter_top_down,
    save_adapter,
)
from .steering import ValueSteering, ValueTarget, fused_qkv_target, value_proj_target
from .topdown import DecoderLinear, TopDownDecoder, TopDownModule
from .two_pass import TwoPassOutput, record_layers, run_two_passes

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "DecoderLinear",
    "TopDownDecoder",
    "TopDownModule",
    "TwoPassOutput",
    "ValueSteering",
    "ValueTarget",
    "convert_original_top_down",
    "fused_qkv_target",
    "is_original_top_down_key",
    "load_adapter",
    "load_top_down_state",
    "read_adapter_config",
    "read_adapter_top_down",
    "record_layers",
    "run_two_passes",
    "save_adapter",
    "value_proj_target",
]
