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
  CONFIG      YAML file, or a name in configs/alpaca (e.g. llama7b_lora); default: llama7b_<METHOD> when it exists
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
config_args=()
if [[ -n "${CONFIG:-}" ]]; then  # a file, or a name in configs/alpaca; anything else is refused, never dropped
  for candidate in "$CONFIG" "$CONFIG.yaml" "configs/alpaca/$CONFIG" "configs/alpaca/$CONFIG.yaml"; do
    [[ -f "$candidate" ]] && { config_args=(--config-file "$candidate"); break; }
  done
  if [[ ${#config_args[@]} -eq 0 ]]; then
    choices=$(cd configs/alpaca && ls *.yaml | sed 's/\.yaml$//' | paste -sd, - | sed 's/,/, /g')
    echo "error: CONFIG=$CONFIG is neither a file nor a config in configs/alpaca (choose one of: $choices)" >&2
    exit 2
  fi
elif [[ -f "configs/alpaca/llama7b_${METHOD}.yaml" ]]; then
  config_args=(--config-file "configs/alpaca/llama7b_${METHOD}.yaml")
fi
extra=()
[[ -n "${DEEPSPEED:-}" ]] && extra+=(TRAIN.DEEPSPEED "$DEEPSPEED")
if [[ "${NPROC:-1}" -gt 1 ]]; then
  launch=(torchrun --nproc_per_node="$NPROC" -m language_generation.train)
else
  launch=(python -m language_generation.train)
fi
"${launch[@]}" "${config_args[@]}" MODEL.NAME_OR_PATH "$MODEL" MODEL.TRANSFER_TYPE "$METHOD" DATA.PATH "$DATA" \
  OUTPUT_DIR "$OUTPUT_DIR" "${extra[@]}" "$@"
