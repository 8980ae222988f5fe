#!/usr/bin/env bash
# TOAST (or a baseline) on the five FGVC datasets with the original's settings, then a summary table.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: bash scripts/train_fgvc.sh [DATASET ...] [KEY VALUE ...]

Trains each DATASET (cub nabirds oxfordflowers stanforddogs stanfordcars; all five when none is
given) from configs/fgvc/ with the original README's TOAST learning rate and weight decay (no grid:
tune --fixed), seeded runs train -> val (selection) and test, then summarizes.

environment:
  FGVC_ROOT   folder holding one sub-folder per dataset (CUB_200_2011/, nabirds/, ...) as named below
  METHOD      transfer type (default: toast)
  BACKBONE    timm model name (default: configs/fgvc/base.yaml's ViT-B/16 in21k)
  MODEL_ROOT  local weights file; disables hub weights
  OUTPUT_DIR  results root (default: output/fgvc)
  NPROC       GPUs per run through torchrun (default: 1)
  SEEDS       seeds of the runs (default: "42 44 82 100 800")
  KEY VALUE   config overrides passed to every run
folders under FGVC_ROOT: cub -> CUB_200_2011, nabirds -> nabirds, oxfordflowers -> OxfordFlower,
  stanforddogs -> Stanford-dogs, stanfordcars -> Stanford-cars (the VPT release names)
USAGE
}

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then usage; exit 0; fi
if [[ -z "${FGVC_ROOT:-}" ]]; then
  echo "FGVC_ROOT is not set; see: bash scripts/train_fgvc.sh -h" >&2
  exit 2
fi
cd "$(dirname "$0")/.."

declare -A FOLDER=([cub]=CUB_200_2011 [nabirds]=nabirds [oxfordflowers]=OxfordFlower \
                   [stanforddogs]=Stanford-dogs [stanfordcars]=Stanford-cars)
METHOD="${METHOD:-toast}"
OUTPUT_DIR="${OUTPUT_DIR:-output/fgvc}"
read -r -a seeds <<< "${SEEDS:-42 44 82 100 800}"

# shellcheck source=scripts/common.sh
source scripts/common.sh

datasets=()
while [[ $# -gt 0 ]] && ! is_override_key "$1"; do datasets+=("$1"); shift; done
overrides=("$@")
[[ ${#datasets[@]} -gt 0 ]] || datasets=(cub nabirds oxfordflowers stanforddogs stanfordcars)
check_names dataset configs/fgvc "${datasets[@]}"

for name in "${datasets[@]}"; do
  config="configs/fgvc/${name}.yaml"
  echo "=== $name ($METHOD)"
  "${launch[@]}" --config-file "$config" --fixed --seeds "${seeds[@]}" DATA.DATAPATH "$FGVC_ROOT/${FOLDER[$name]}" OUTPUT_DIR "$OUTPUT_DIR" \
    "${model_opts[@]}" "${overrides[@]}"
done
python -m visual_classification.summarize "$OUTPUT_DIR"
