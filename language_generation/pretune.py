"""Pre-tune the top-down path on raw text: ``python -m language_generation.pretune [--config-file F] [KEY VALUE ...]``.

As the original ``pretune_top_down.py``: the base model frozen, A_i, B_i and p trained (T at identity)
with the LM loss plus 1.0 × the reconstruction loss ``Σ_i MSE(A_i(out_i)/10, in_i/10)``, on text cut into
512-token blocks (OpenWebText for real runs: ``DATA.PATH openwebtext``). The adapter it writes starts a
TOAST run through ``MODEL.TOPDOWN_WEIGHTS <its OUTPUT_DIR>``.
"""

from __future__ import annotations

import argparse
import json
import sys

from .train import load_config, train

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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides (after the pre-tuning defaults)")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config_file, PRETUNE_DEFAULTS + list(args.opts))
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    if cfg.MODEL.TRANSFER_TYPE not in ("toast", "toast-lite"):
        sys.exit(f"error: pre-tuning trains the top-down path; MODEL.TRANSFER_TYPE={cfg.MODEL.TRANSFER_TYPE!r}")
    print(json.dumps(train(cfg), indent=2))


if __name__ == "__main__":
    main()
