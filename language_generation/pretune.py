"""Pre-tune the top-down path on raw text: ``python -m language_generation.pretune [--config-file F] [KEY VALUE ...]``.

As the original ``pretune_top_down.py``: the base model frozen, A_i, B_i and p trained (T at identity)
with the LM loss plus 1.0 × the reconstruction loss ``Σ_i MSE(A_i(out_i)/10, in_i/10)``, on text cut into
512-token blocks (OpenWebText for real runs: ``DATA.PATH openwebtext``). The adapter it writes starts a
TOAST run through ``MODEL.TOPDOWN_WEIGHTS <its OUTPUT_DIR>``.
"""

from __future__ import annotations

from .train import main as train_main

# The original's recipe (pretune_top_down.py and its README command), applied before the user's KEY VALUE
# pairs: 200,000 documents, 512-token blocks with BOS per document, no held-out set, 1 epoch, per-device
# batch 3 x 12 accumulation (x 4 GPUs in the original), lr 3e-5, no weight decay, 3 % warm-up, cosine, a
# checkpoint every 2000 steps. Not defaults here: bf16 / tf32 (GPU-only; add TRAIN.BF16 True TRAIN.TF32 True)
# and DeepSpeed (TRAIN.DEEPSPEED configs/deepspeed/...).
PRETUNE_DEFAULTS = [
    "MODEL.TOAST.TRAIN", "['down', 'to_value', 'prompt']",
    "MODEL.TOAST.RECON_COEF", "1.0",
    "DATA.FORMAT", "text",
    "DATA.BLOCK_SIZE", "512",
    "DATA.MAX_RECORDS", "200000",
    "DATA.EVAL_FRACTION", "0.0",
    "TRAIN.NUM_TRAIN_EPOCHS", "1.0",
    "TRAIN.PER_DEVICE_TRAIN_BATCH_SIZE", "3",
    "TRAIN.GRADIENT_ACCUMULATION_STEPS", "12",
    "TRAIN.LEARNING_RATE", "3e-5",
    "TRAIN.WEIGHT_DECAY", "0.0",
    "TRAIN.WARMUP_STEPS", "0.03",
    "TRAIN.LR_SCHEDULER_TYPE", "cosine",
    "TRAIN.SAVE_STEPS", "2000",
    "OUTPUT_DIR", "./output/pretune",
]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    train_main(argv, defaults=PRETUNE_DEFAULTS, require_top_down=True, description=__doc__)


if __name__ == "__main__":
    main()
