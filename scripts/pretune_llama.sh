#!/usr/bin/env bash
# Pre-tune the top-down path of a LLaMA-family model on raw text (LM loss + 1.0 x reconstruction loss).
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  cat <<'USAGE'
usage: MODEL=<model> [DATA=openwebtext] [OUTPUT_DIR=output/pretune] [NPROC=1] [DEEPSPEED=cfg.json] \
       bash scripts/pretune_llama.sh [KEY VALUE ...]

Runs python -m language_generation.pretune (torchrun when NPROC > 1) with the original's recipe as defaults
(first 200,000 documents, 512-token blocks, 1 epoch, batch 3 x 12 accumulation per GPU, lr 3e-5; KEY VALUE
pairs override it; add TRAIN.BF16 True TRAIN.TF32 True on GPUs). Then start a TOAST run from it:
  MODEL=<model> DATA=<alpaca.json> bash scripts/train_alpaca.sh MODEL.TOPDOWN_WEIGHTS output/pretune
USAGE
  exit 0
fi
cd "$(dirname "$0")/.."
[[ -n "${MODEL:-}" ]] || { echo "set MODEL (see -h)" >&2; exit 2; }
extra=()
[[ -n "${DEEPSPEED:-}" ]] && extra+=(TRAIN.DEEPSPEED "$DEEPSPEED")
if [[ "${NPROC:-1}" -gt 1 ]]; then
  launch=(torchrun --nproc_per_node="$NPROC" -m language_generation.pretune)
else
  launch=(python -m language_generation.pretune)
fi
"${launch[@]}" MODEL.NAME_OR_PATH "$MODEL" DATA.PATH "${DATA:-openwebtext}" \
  OUTPUT_DIR "${OUTPUT_DIR:-output/pretune}" "${extra[@]}" "$@"
