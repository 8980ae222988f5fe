"""Pre-tune the top-down path on your own images: ``python -m visual_classification.pretune --config-file F
DATA.DATAPATH <ImageFolder root> [KEY VALUE ...]``.

The original released top-down weights pre-tuned on ImageNet-1k but no code to make them. This follows the
recipe inferred from its ancestor AbSViT (``reference/original_codebase.md`` A.9): the backbone frozen, A_i,
B_i and p trained (T at identity) with cross-entropy on the second pass plus 0.1 × the reconstruction loss
``Σ_i MSE(A_i(out_i), in_i)``, through the same trainer (DDP, bf16, resume) as ``train``. The run's
``best/`` folder then starts TOAST tuning: ``MODEL.TOPDOWN_WEIGHTS <OUTPUT_DIR>/best``.
"""

from __future__ import annotations

import argparse
import sys

from .train import load_config, train

PRETUNE_DEFAULTS = [
    "MODEL.TRANSFER_TYPE",
    "toast",
    "MODEL.TOAST.RECON_COEF",
    "0.1",
    "DATA.FORMAT",
    "imagefolder",
    "OUTPUT_DIR",
    "./output/pretune_vit",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides (after the pre-tuning defaults)")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config_file, PRETUNE_DEFAULTS + list(args.opts))
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    if cfg.MODEL.TRANSFER_TYPE != "toast":
        sys.exit(f"error: pre-tuning trains A_i, B_i and p (transfer type toast), not {cfg.MODEL.TRANSFER_TYPE!r}")
    train(cfg, overwrite=args.overwrite)


if __name__ == "__main__":
    main()
