#!/usr/bin/env bash
# GPU check: a few TOAST training steps of the demo on CUDA in bf16, once directly and once through
# torchrun, printing images/s and peak memory. Needs the demo installs (see the README) and one GPU.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  echo "usage: bash scripts/gpu_check.sh   (CUDA machine; about 3 minutes)"; exit 0
fi
cd "$(dirname "$0")/.."
OUT="${OUT:-output/gpu_check}"
rm -rf "$OUT"
python - <<'PY'
import torch
assert torch.cuda.is_available(), "gpu_check.sh needs a CUDA GPU"
print("GPU:", torch.cuda.get_device_name(), "| torch", torch.__version__)
PY
common=(--tasks digits_clutter --methods toast --no-pretune --epochs 2 DEVICE cuda DATA.CROPSIZE 224 DATA.BATCH_SIZE 64)
echo "=== direct"
python -m visual_classification.demo --out "$OUT/direct" "${common[@]}" | grep -E "images/s|results|demo finished"
echo "=== torchrun --nproc_per_node=1"
torchrun --nproc_per_node=1 -m visual_classification.demo --out "$OUT/torchrun" "${common[@]}" \
  | grep -E "images/s|results|demo finished"
