"""The methods the experiment compares, as ``KEY VALUE`` overrides of one training config, with their lr grids.

``ia3`` is ``peft``'s IA3 on k/v/down projections, a transfer method of the project
(``language_generation/transfer.py``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    overrides: tuple[str, ...]
    grid: tuple[float, ...]  # AdamW learning rates tried on val (extended past an edge that wins)
    pretuned_path: bool = False  # starts from the pre-tuned top-down path (MODEL.TOPDOWN_WEIGHTS)
    corpus_base: bool = False  # tunes the base model after LoRA on the pre-tuning corpus (merged)

    @property
    def is_toast(self) -> bool:
        return "toast" in self.overrides[1]


# Each starting grid is centred on the lr the method chose on val (answer loss) in the full three-seed run of
# 2026-12-06 (report.md there; its grids started at 1e-3, 3e-3, 1e-2 and had to grow past an edge 11 times:
# 38 runs instead of 27). Val only, never test; a grid whose best value is still at an edge grows as before.
METHODS = {
    # the original's recipe: A_i pre-tuned on text and frozen, B_i and p tuned (MODEL.TOAST.TRAIN auto)
    "toast-pre": Method(("MODEL.TRANSFER_TYPE", "toast"), (1e-3 / 3, 1e-3, 3e-3), pretuned_path=True),
    # TOAST-Lite from the pre-tuned path: rank-4 updates of A_i and B_i, and p
    "toast-lite-pre": Method(("MODEL.TRANSFER_TYPE", "toast-lite"), (3e-3, 1e-2, 3e-2), pretuned_path=True),
    # a fresh path, the default (auto: A_i, B_i and p train)
    "toast-fresh": Method(("MODEL.TRANSFER_TYPE", "toast"), (1e-3 / 9, 1e-3 / 3, 1e-3)),
    # a fresh path that starts at the base model (B_i = 0)
    "toast-zero": Method(
        ("MODEL.TRANSFER_TYPE", "toast", "MODEL.TOAST.DECODER_INIT", "zero_to_value"),
        (1e-3 / 9, 1e-3 / 3, 1e-3),
    ),
    "lora-r4": Method(
        ("MODEL.TRANSFER_TYPE", "lora", "MODEL.LORA.RANK", "4", "MODEL.LORA.ALPHA", "4.0"), (3e-3, 1e-2, 3e-2)
    ),
    "lora-r16": Method(
        ("MODEL.TRANSFER_TYPE", "lora", "MODEL.LORA.RANK", "16", "MODEL.LORA.ALPHA", "16.0"), (1e-3, 3e-3, 1e-2)
    ),
    # the control: LoRA first trained on the same corpus for the same tokens (merged), then a fresh LoRA tuned
    "lora-corpus": Method(
        ("MODEL.TRANSFER_TYPE", "lora", "MODEL.LORA.RANK", "4", "MODEL.LORA.ALPHA", "4.0"),
        (1e-3, 3e-3, 1e-2),
        corpus_base=True,
    ),
    # full fine-tuning; this experiment runs in float32, so its master weights are fp32
    "end2end": Method(("MODEL.TRANSFER_TYPE", "end2end"), (3e-5, 1e-4, 3e-4)),
    "ia3": Method(("MODEL.TRANSFER_TYPE", "ia3"), (1e-2, 3e-2, 9e-2)),
}


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
