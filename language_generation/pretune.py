"""Pre-tune the top-down path on raw text: ``python -m language_generation.pretune [--config-file F] [KEY VALUE ...]``.

As the original ``pretune_top_down.py``: the base model frozen, A_i, B_i and p trained (T at identity)
with the LM loss plus 1.0 × the reconstruction loss ``Σ_i MSE(A_i(out_i)/10, in_i/10)``, on text cut into
512-token blocks (OpenWebText for real runs: ``DATA.PATH openwebtext``). The adapter it writes starts a
TOAST run through ``MODEL.TOPDOWN_WEIGHTS <its OUTPUT_DIR>``.
"""

from __future__ import annotations

from .train import main as train_main

PRETUNE_DEFAULTS = [
    "MODEL.TRANSFER_TYPE",
    "toast",
    "MODEL.TOAST.TRAIN",
    "['down', 'to_value', 'prompt']",
    "MODEL.TOAST.RECON_COEF",
    "1.0",
    "DATA.FORMAT",
    "text",
    "DATA.BLOCK_SIZE",
    "512",
    "OUTPUT_DIR",
    "./output/pretune",
]


def main(argv: list[str] | None = None) -> None:
    train_main(argv, defaults=PRETUNE_DEFAULTS, require_toast=True, description=__doc__)


if __name__ == "__main__":
    main()
