"""Pre-tune the top-down path on your own images: ``python -m visual_classification.pretune --config-file F
DATA.DATAPATH <ImageFolder root> [KEY VALUE ...]``.

The original released top-down weights pre-tuned on ImageNet-1k but no code to make them. This follows the
recipe inferred from its ancestor AbSViT (``reference/original_codebase.md`` A.9): the backbone frozen, A_i,
B_i and p trained (T at identity) with cross-entropy on the second pass plus 0.1 × the reconstruction loss
``Σ_i MSE(A_i(out_i), in_i)``, through the same trainer (DDP, bf16, resume) as ``train``. The run's
``best/`` folder then starts TOAST tuning: ``MODEL.TOPDOWN_WEIGHTS <OUTPUT_DIR>/best``.
"""

from __future__ import annotations

from .models.transfer import TRANSFER_METHODS
from .train import main as train_main

PRETUNE_DEFAULTS = [
    "MODEL.TRANSFER_TYPE",
    next(m.name for m in TRANSFER_METHODS.in_table_order() if m.pretunes),  # the method whose path pre-tuning trains
    "MODEL.TOAST.RECON_COEF",
    "0.1",
    "DATA.FORMAT",
    "imagefolder",
    "OUTPUT_DIR",
    "./output/pretune_vit",
]


def main(argv: list[str] | None = None) -> None:
    train_main(argv, defaults=PRETUNE_DEFAULTS, pretuning=True, description=__doc__)


if __name__ == "__main__":
    main()
