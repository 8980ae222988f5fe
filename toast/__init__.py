"""TOAST: Top-Down Attention Steering, the module shared by the vision and language sub-projects.

Reads top to bottom: the top-down module (:mod:`toast.topdown`), value steering (:mod:`toast.steering`),
the two-pass driver (:mod:`toast.two_pass`), adapter files (:mod:`toast.adapter`); shared by both halves'
transfer code: which top-down tensors train (:mod:`toast.parts`), the method registry (:mod:`toast.registry`),
the parameter summary (:mod:`toast.summary`). Depends on torch only.
"""

# Names are imported on first use (PEP 562), so that torch-free parts (``toast.config_files``, ``toast.files``,
# ``toast.runs``) load without torch: a CLI answers ``--help`` and config errors before torch is imported.
_EXPORTS = {
    "adapter": (
        "ADAPTER_CONFIG",
        "ADAPTER_WEIGHTS",
        "convert_original_top_down",
        "is_original_top_down_key",
        "load_adapter",
        "load_top_down_state",
        "read_adapter_config",
        "read_adapter_top_down",
        "save_adapter",
    ),
    "parts": ("TOP_DOWN_PARTS", "top_down_part", "trains_in_model", "trains_top_down"),
    "registry": ("Registry",),
    "steering": ("ValueSteering", "ValueTarget", "fused_qkv_target", "value_proj_target"),
    "summary": ("ParameterSummary", "parameter_summary"),
    "topdown": ("DecoderLinear", "TopDownDecoder", "TopDownModule"),
    "two_pass": ("TwoPassOutput", "record_layers", "run_two_passes"),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    """``toast.X``: the exported name ``X`` from its module, or the submodule ``toast.X``."""
    import importlib

    if name in _HOME:
        value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
        globals()[name] = value
        return value
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


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
