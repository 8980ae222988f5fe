"""The vision refocusing study's methods (the columns of its table), their lr grids and where each starts.

Every starting grid spans about the same head lrs (3e-3 ... 3e-2); what differs is the lr of the part each method
adapts (why each grid is where it is: visual_classification/README.md, "When refocusing helps"). Each method's
head multiplier is a starting point: ``--head-factors`` scales it by a few factors, chosen on val for every
method alike. The linear probe is the library's converged one (full-batch L-BFGS on cached features, no
augmentation), whose grid is its L2 strength.
"""

from __future__ import annotations

from dataclasses import replace

from experiments.methods import Method, as_overrides, table

# Caches that change no number: pass 1 (frozen, no stochastic depth here) and the linear probe's features are
# computed once per image and split, kept in float32.
FIRST_PASS_CACHE = {"MODEL.TOAST.CACHE_FIRST_PASS": True, "DATA.CACHE_DTYPE": "float32"}
FEATURE_CACHE = {"DATA.CACHE_FEATURES": True, "DATA.CACHE_DTYPE": "float32"}
# configs/custom/linear_probe.yaml: one feature vector per image, 20 L-BFGS iterations per epoch
_PROBE = {**FEATURE_CACHE, "DATA.AUGMENT": False, "SOLVER.OPTIMIZER": "lbfgs", "SOLVER.WARMUP_EPOCH": 0}
_PROBE_L2 = (3e-4, 1e-3, 3e-3)  # λ of mean CE + λ/2 ‖W‖²
_TOP_DOWN = {"SOLVER.HEAD_LR_MULT": 30.0, **FIRST_PASS_CACHE}
_TOP_DOWN_LRS = (1e-4, 3e-4, 1e-3)
_ADAPTER = {"SOLVER.HEAD_LR_MULT": 10.0}
_ADAPTER_LRS = (3e-4, 1e-3, 3e-3)
_LITE = {**_ADAPTER, **FIRST_PASS_CACHE}
# Full fine-tuning: a head multiplier that puts its head lrs on the others' (3e-3 ... 3e-2). No per-epoch `last`
# checkpoint (the whole ViT with its AdamW state, ~260 MB a run, for runs of minutes); best/ is kept.
_END2END = {"SOLVER.HEAD_LR_MULT": 300.0, "SAVE_LAST": False}


def _method(name: str, transfer: str, lrs: tuple[float, ...], opts: dict, **kwargs) -> Method:
    return Method(name, tuple(as_overrides({"MODEL.TRANSFER_TYPE": transfer, **opts})), lrs, **kwargs)


_BASELINES = (
    _method("linear", "linear", _PROBE_L2, _PROBE, axis="wd"),
    _method("bias", "bias", _ADAPTER_LRS, _ADAPTER),
    _method("lora", "lora", _ADAPTER_LRS, _ADAPTER),
    _method("prompt", "prompt", (1e-3, 3e-3, 1e-2), {"SOLVER.HEAD_LR_MULT": 3.0}),
    _method("end2end", "end2end", (1e-5, 3e-5, 1e-4), _END2END),
)
# "<method>-seq": the same method trained on the source first, then on the target from it (MODEL.INIT_FROM).
# linear has none: it trains nothing but the head, which the target replaces.
_SEQUENTIAL = tuple(replace(m, name=f"{m.name}-seq", source_stage=True) for m in _BASELINES if m.name != "linear")
_TOAST = (
    _method("toast", "toast", _TOP_DOWN_LRS, _TOP_DOWN, family="toast"),
    _method(
        "toast-B0", "toast", _TOP_DOWN_LRS, {**_TOP_DOWN, "MODEL.TOAST.DECODER_INIT": "zero_to_value"}, family="toast"
    ),  # fmt: skip
    _method("toast-pretuned", "toast", _TOP_DOWN_LRS, _TOP_DOWN, pretuned=True, family="toast"),
    _method("toast-lite-pretuned", "toast-lite", _ADAPTER_LRS, _LITE, pretuned=True, family="toast"),
)
METHODS = table((*_BASELINES, *_SEQUENTIAL, *_TOAST))
# Where each method's target grid starts, per domain: the three lrs around the one it chose on val in that
# domain's five-seed run (its grid.json), so that a fresh run does not grow again the grids that run had to grow
# (7 runs on digits, 10 on photos). Val only, never test; a grid still grows past an edge that wins. Other
# domains start at the method's own grid; the -seq source runs keep the method's middle lr.
START_GRIDS = {
    "digits": {
        "linear": _PROBE_L2,
        "bias": (3e-4, 1e-3, 3e-3),
        "lora": (1e-3, 3e-3, 9e-3),
        "prompt": (1e-3, 3e-3, 1e-2),
        "end2end": (1e-5 / 3, 1e-5, 3e-5),
        "bias-seq": (1e-3, 3e-3, 9e-3),
        "lora-seq": (1e-3, 3e-3, 9e-3),
        "prompt-seq": (1e-3 / 9, 1e-3 / 3, 1e-3),
        "end2end-seq": (1e-5, 3e-5, 1e-4),
        "toast": (1e-4, 3e-4, 1e-3),
        "toast-B0": (1e-4, 3e-4, 1e-3),
        "toast-pretuned": (1e-4 / 3, 1e-4, 3e-4),
        "toast-lite-pretuned": (3e-4, 1e-3, 3e-3),
    },
    "photos": {
        "linear": _PROBE_L2,
        "bias": (1e-3, 3e-3, 9e-3),
        "lora": (1e-3, 3e-3, 9e-3),
        "prompt": (1e-3 / 3, 1e-3, 3e-3),
        "end2end": (1e-5, 3e-5, 1e-4),
        "bias-seq": (1e-4, 3e-4, 1e-3),
        "lora-seq": (1e-4, 3e-4, 1e-3),
        "prompt-seq": (1e-3 / 3, 1e-3, 3e-3),
        "end2end-seq": (1e-5 / 3, 1e-5, 3e-5),
        "toast": (3e-4, 1e-3, 3e-3),
        "toast-B0": (1e-4, 3e-4, 1e-3),
        "toast-pretuned": (1e-4 / 3, 1e-4, 3e-4),
        "toast-lite-pretuned": (1e-4, 3e-4, 1e-3),  # its optimum, 1e-4, ties 3e-4 at the edge: not grown
    },
}


def start_grid(name: str, domain: str) -> tuple[float, ...]:
    """The lrs a method's target grid starts from in ``domain`` (``START_GRIDS``, else the method's own)."""
    return START_GRIDS.get(domain, {}).get(name, METHODS[name].lrs)
