"""TOAST: Top-Down Attention Steering, the module shared by the vision and language sub-projects.

Reads top to bottom: the top-down module (:mod:`toast.topdown`), value steering (:mod:`toast.steering`),
the two-pass driver (:mod:`toast.two_pass`), adapter files (:mod:`toast.adapter`); shared by both halves'
transfer code: which top-down tensors train (:mod:`toast.parts`), the method registry (:mod:`toast.registry`),
the parameter summary (:mod:`toast.summary`). Depends on torch only; run plumbing lives in :mod:`runkit`.
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
from .parts import TOP_DOWN_PARTS, top_down_part, trains_in_model, trains_top_down
from .registry import Registry
from .steering import ValueSteering, ValueTarget, fused_qkv_target, value_proj_target
from .summary import ParameterSummary, parameter_summary
from .topdown import DecoderLinear, TopDownDecoder, TopDownModule
from .two_pass import TwoPassOutput, record_layers, run_two_passes

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "DecoderLinear",
    "ParameterSummary",
    "Registry",
    "TOP_DOWN_PARTS",
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
    "parameter_summary",
    "read_adapter_config",
    "read_adapter_top_down",
    "record_layers",
    "run_two_passes",
    "save_adapter",
    "top_down_part",
    "trains_in_model",
    "trains_top_down",
    "value_proj_target",
]
