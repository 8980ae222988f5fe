"""The methods the language refocusing study compares, as ``KEY VALUE`` overrides of one training config, with
their lr grids.

``ia3`` is ``peft``'s IA3 on k/v/down projections, a transfer method of the project
(``language_generation/methods/``).
"""

from __future__ import annotations

from experiments.methods import Method, table

_LORA_R4 = ("MODEL.TRANSFER_TYPE", "lora", "MODEL.LORA.RANK", "4", "MODEL.LORA.ALPHA", "4.0")
# Each starting grid is centred on the lr the method chose on val (answer loss) in a full three-seed run (its
# report.md), so that a fresh run does not grow again the grids that run had to grow. Val only, never test; a
# grid whose best value is still at an edge grows past it.
METHODS = table((
    # the original's recipe: A_i pre-tuned on text and frozen, B_i and p tuned (MODEL.TOAST.TRAIN auto)
    Method("toast-pre", ("MODEL.TRANSFER_TYPE", "toast"), (1e-3 / 3, 1e-3, 3e-3), pretuned=True, family="toast"),
    # TOAST-Lite from the pre-tuned path: rank-4 updates of A_i and B_i, and p
    Method("toast-lite-pre", ("MODEL.TRANSFER_TYPE", "toast-lite"), (3e-3, 1e-2, 3e-2), pretuned=True,
           family="toast"),
    # a fresh path, the default (auto: A_i, B_i and p train)
    Method("toast-fresh", ("MODEL.TRANSFER_TYPE", "toast"), (1e-3 / 9, 1e-3 / 3, 1e-3), family="toast"),
    # a fresh path that starts at the base model (B_i = 0)
    Method("toast-zero", ("MODEL.TRANSFER_TYPE", "toast", "MODEL.TOAST.DECODER_INIT", "zero_to_value"),
           (1e-3 / 9, 1e-3 / 3, 1e-3), family="toast"),
    Method("lora-r4", _LORA_R4, (3e-3, 1e-2, 3e-2)),
    Method("lora-r16", ("MODEL.TRANSFER_TYPE", "lora", "MODEL.LORA.RANK", "16", "MODEL.LORA.ALPHA", "16.0"),
           (1e-3, 3e-3, 1e-2)),
    # the control: LoRA first trained on the same corpus for the same tokens (merged), then a fresh LoRA tuned
    Method("lora-corpus", _LORA_R4, (1e-3, 3e-3, 1e-2), source_stage=True),
    # full fine-tuning; this study runs in float32, so its master weights are fp32
    Method("end2end", ("MODEL.TRANSFER_TYPE", "end2end"), (3e-5, 1e-4, 3e-4)),
    Method("ia3", ("MODEL.TRANSFER_TYPE", "ia3"), (1e-2, 3e-2, 9e-2)),
))  # fmt: skip


def failed_run(log: list[dict]) -> str | None:
    """Why a training run failed, from its logged ``loss`` / ``grad_norm`` records, or None: *diverged* (the last
    logged training loss above the first) or *dead* (a zero gradient at the end: nothing can move any more)."""
    logged = [r for r in log if "loss" in r and "grad_norm" in r]
    if len(logged) < 2:
        return None
    if logged[-1]["grad_norm"] == 0.0:
        return "dead (zero gradient at the end)"
    if logged[-1]["loss"] > logged[0]["loss"]:
        return f"diverged (training loss {logged[0]['loss']:.2f} -> {logged[-1]['loss']:.2f})"
    return None
