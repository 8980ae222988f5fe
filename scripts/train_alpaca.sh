#!/usr/bin/env bash
# TOAST-tune a LLaMA-family model on Alpaca-style data (or run the offline demo).
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: bash scripts/train_alpaca.sh [KEY VALUE ...]

With neither MODEL nor DATA set, runs the built-in offline demo (python -m language_generation.demo).
Otherwise trains with python -m language_generation.train (torchrun when NPROC > 1).

environment:
  MODEL       hub name or local folder of the base model (e.g. meta-llama/Llama-2-7b-hf)
  DATA        Alpaca/ShareGPT JSON(L) file, folder or hub dataset name
  METHOD      toast (default) | toast-lite | lora | end2end
  CONFIG      YAML config (default: configs/alpaca/llama7b_<METHOD>.yaml when it exists)
  OUTPUT_DIR  run folder (default: output/alpaca_<METHOD>)
  NPROC       GPUs (default: 1)
  DEEPSPEED   a DeepSpeed JSON (e.g. configs/deepspeed/zero3.json), passed as TRAIN.DEEPSPEED
  KEY VALUE   any config override, e.g. TRAIN.MAX_STEPS 100 TRAIN.LEARNING_RATE 2e-5
USAGE
}

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then usage; exit 0; fi
cd "$(dirname "$0")/.."

if [[ -z "${MODEL:-}" && -z "${DATA:-}" ]]; then
  echo "MODEL and DATA are not set: running the built-in offline demo (bash scripts/train_alpaca.sh -h for real runs)"
  exec python -m language_generation.demo "$@"
fi
[[ -n "${MODEL:-}" && -n "${DATA:-}" ]] || { echo "set both MODEL and DATA (see -h)" >&2; exit 2; }

METHOD="${METHOD:-toast}"
OUTPUT_DIR="${OUTPUT_DIR:-output/alpaca_${METHOD}}"
CONFIG="${CONFIG:-configs/alpaca/llama7b_${METHOD}.yaml}"
config_args=()
[[ -f "$CONFIG" ]] && config_args=(--config-file "$CONFIG")
extra=()
[[ -n "${DEEPSPEED:-}" ]] && extra+=(TRAIN.DEEPSPEED "$DEEPSPEED")
if [[ "${NPROC:-1}" -gt 1 ]]; then
  launch=(torchrun --nproc_per_node="$NPROC" -m language_generation.train)
else
  launch=(python -m language_generation.train)
fi
"${launch[@]}" "${config_args[@]}" MODEL.NAME_OR_PATH "$MODEL" MODEL.TRANSFER_TYPE "$METHOD" DATA.PATH "$DATA" \
  OUTPUT_DIR "$OUTPUT_DIR" "${extra[@]}" "$@"
