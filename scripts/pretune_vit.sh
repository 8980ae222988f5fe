#!/usr/bin/env bash
# Pre-tune a ViT's top-down path on an ImageFolder tree (ImageNet-1k layout for the real run).
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  cat <<'USAGE'
usage: DATA_ROOT=<imagefolder root> [BACKBONE=vit_base_patch16_224.augreg_in21k] [OUTPUT_DIR=output/pretune_vit] \
       [NPROC=1] bash scripts/pretune_vit.sh [KEY VALUE ...]

DATA_ROOT holds train/ and val/ with one folder per class. Runs python -m visual_classification.pretune
(CE on the second pass + 0.1 x reconstruction loss, backbone frozen). Then tune from it:
  VTAB_ROOT=... bash scripts/train_vtab.sh MODEL.TOPDOWN_WEIGHTS output/pretune_vit/best
USAGE
  exit 0
fi
cd "$(dirname "$0")/.."
[[ -n "${DATA_ROOT:-}" ]] || { echo "set DATA_ROOT (see -h)" >&2; exit 2; }
model=(MODEL.PRETRAINED True)
[[ -n "${BACKBONE:-}" ]] && model+=(MODEL.BACKBONE "$BACKBONE")
if [[ "${NPROC:-1}" -gt 1 ]]; then
  launch=(torchrun --nproc_per_node="$NPROC" -m visual_classification.pretune)
else
  launch=(python -m visual_classification.pretune)
fi
"${launch[@]}" DATA.DATAPATH "$DATA_ROOT" DATA.TEST_SPLIT none OUTPUT_DIR "${OUTPUT_DIR:-output/pretune_vit}" \
  "${model[@]}" "$@"
