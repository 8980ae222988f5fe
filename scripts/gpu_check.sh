#!/usr/bin/env bash
# GPU check: one call on one CUDA GPU, about 9 minutes, every stage bounded in time. Nothing is downloaded:
# all models are random-weight shapes. Stages (PARTS, in this order by default):
#  - generation: TOAST greedy generation against the plain model on SmolLM2-135M's shape (bf16), eager and
#    compiled (static two-pass cache, torch.compile of the decoding step, CUDA graphs): tokens/s
#    (benchmarks/lm_step_time.py, generation table only);
#  - vision: ViT-B/16 training step at 224 px, bf16 autocast: TOAST and TOAST-Lite against the floor and
#    against LoRA, images/s and peak memory (benchmarks/step_time.py);
#  - protocol: the VTAB protocol benchmark at half the real size (benchmarks/protocol_time.py --gpu);
#  - fsdp: the Trainer's FSDP2 path (TRAIN.FSDP, which does not run on the CPU) on every GPU with a tiny
#    random LLaMA, killed after a checkpoint and resumed, against one plain process (scripts/fsdp_check.py);
#  - predict (not by default): ViT-B/16 prediction, TOAST (folded, unfolded) against a plain timm forward
#    (benchmarks/predict_time.py);
#  - demo (not by default): the vision demo's two epochs, directly and through torchrun (needs the demo weights).
# The raw output of every stage goes straight into one log file (python -u, no pipe), with each stage's exit
# code and seconds: $LOG, by default $OUT/gpu_check.log when $OUT is set (the device tool's return folder),
# else output/gpu_check/gpu_check.log. The log is printed at the end. A stage that runs past its limit is
# stopped (exit 124) and the next one starts; what it printed stays in the log.
set -uo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  echo "usage: [PARTS='generation vision protocol fsdp'] [LOG=file] [WORK=output/gpu_check] bash scripts/gpu_check.sh"
  echo "       (CUDA machine; about 9 minutes; per-stage limits LIMIT_GENERATION=220 LIMIT_VISION=110 LIMIT_PROTOCOL=200 LIMIT_FSDP=120 s)"
  exit 0
fi
cd "$(dirname "$0")/.."
WORK="${WORK:-output/gpu_check}"
PARTS="${PARTS:-generation vision protocol fsdp}"
if [[ -n "${OUT:-}" ]]; then LOG="${LOG:-$OUT/gpu_check.log}"; else LOG="${LOG:-$WORK/gpu_check.log}"; fi
mkdir -p "$WORK" "$(dirname "$LOG")"
: > "$LOG"
export PYTHONUNBUFFERED=1

stage() {  # stage NAME LIMIT_SECONDS COMMAND...: runs COMMAND with its output appended to $LOG
  local name=$1 limit=$2
  shift 2
  echo "=== $name (limit ${limit} s): $*" >> "$LOG"
  local start=$SECONDS
  timeout --kill-after=15 "$limit" "$@" >> "$LOG" 2>&1
  local rc=$?
  echo "=== $name: exit $rc after $((SECONDS - start)) s$([[ $rc == 124 ]] && echo ' (stopped at its limit)')" >> "$LOG"
  echo "$name: exit $rc after $((SECONDS - start)) s"
  return $rc
}

if ! stage environment 60 python - <<'PY'
import platform
import torch
import transformers
assert torch.cuda.is_available(), "gpu_check.sh needs a CUDA GPU"
print("GPU:", torch.cuda.get_device_name(), "| torch", torch.__version__, "| transformers", transformers.__version__,
      "| python", platform.python_version())
PY
then
  cat "$LOG"
  exit 1
fi
if [[ " $PARTS " == *" generation "* ]]; then
  stage generation "${LIMIT_GENERATION:-220}" python benchmarks/lm_step_time.py --shape smollm2-135m --types \
    --new-tokens 64 --gen-iters 3 --skip-uncached
fi
if [[ " $PARTS " == *" vision "* ]]; then
  stage vision "${LIMIT_VISION:-110}" python benchmarks/step_time.py --backbone vit_base_patch16_224 --size 224 \
    --batch 64 --types toast toast-lite lora --warmup 2 --iters 5
fi
if [[ " $PARTS " == *" protocol "* ]]; then
  stage protocol "${LIMIT_PROTOCOL:-200}" python benchmarks/protocol_time.py --gpu --train 500 --test 5000 \
    --out "$WORK/protocol"
fi
if [[ " $PARTS " == *" fsdp "* ]]; then
  stage fsdp "${LIMIT_FSDP:-120}" python scripts/fsdp_check.py --out "$WORK/fsdp"
fi
if [[ " $PARTS " == *" predict "* ]]; then
  stage predict "${LIMIT_PREDICT:-90}" python benchmarks/predict_time.py --backbone vit_base_patch16_224 --batch 64
fi
if [[ " $PARTS " == *" demo "* ]]; then
  common=(--tasks digits_clutter --methods toast --no-pretune --epochs 2 DEVICE cuda DATA.CROPSIZE 224 DATA.BATCH_SIZE 64)
  rm -rf "$WORK/direct" "$WORK/torchrun"
  stage "demo (direct)" 300 python -m visual_classification.demo --out "$WORK/direct" "${common[@]}"
  stage "demo (torchrun)" 300 torchrun --nproc_per_node=1 -m visual_classification.demo --out "$WORK/torchrun" "${common[@]}"
fi
echo "--- raw log: $LOG"
cat "$LOG"
