#!/usr/bin/env bash
# TOAST (or a baseline) on VTAB-1k with the original protocol, then a summary table.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: bash scripts/train_vtab.sh [TASK ...] [KEY VALUE ...]

With VTAB_ROOT unset, runs the built-in offline demo (python -m visual_classification.demo).
With VTAB_ROOT set, tunes each TASK (all 19 when none is given; names as in configs/vtab/) with
visual_classification.tune (lr x wd grid on train800 -> val200, then seeded runs on
train800val200 -> test) and prints visual_classification.summarize for OUTPUT_DIR.

environment:
  VTAB_ROOT   folder holding the prepared VTAB-1k tasks (<task>/train800.txt, ...)
  METHOD      transfer type: toast (default), toast-lite, linear, lora, prompt, bias, end2end
  BACKBONE    timm model name (default: configs/vtab/base.yaml's ViT-B/16 in21k)
  MODEL_ROOT  local weights file (e.g. the original release's TOAST checkpoint); disables hub weights
  OUTPUT_DIR  results root (default: output/vtab)
  NPROC       GPUs per run through torchrun (default: 1, plain python)
  CACHE       0 (default): faithful: every run computes the backbone's features, with the configs'
              stochastic depth (MODEL.DROP_PATH_RATE 0.1), as the original; 1: for speed, the linear
              probe trains on cached features (DATA.CACHE_FEATURES), computed once in eval mode, so
              without stochastic depth (a warning says so)
  CACHE_FIRST_PASS  1: TOAST reuses pass 1's tokens, memory-mapped under OUTPUT_DIR/cache (about
              0.6 MB per image at ViT-B/224 in float32); pass 1 then runs without stochastic depth, so it is
              off by default (see visual_classification/README.md, "Protocol and caches")
  KEY VALUE   any config override, passed to every run (e.g. SOLVER.TOTAL_EPOCH 50)
USAGE
}

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then usage; exit 0; fi
cd "$(dirname "$0")/.."

if [[ -z "${VTAB_ROOT:-}" ]]; then
  echo "VTAB_ROOT is not set: running the built-in offline demo (bash scripts/train_vtab.sh -h for real runs)"
  exec python -m visual_classification.demo "$@"
fi

METHOD="${METHOD:-toast}"
OUTPUT_DIR="${OUTPUT_DIR:-output/vtab}"

# shellcheck source=scripts/common.sh
source scripts/common.sh

tasks=()
while [[ $# -gt 0 ]] && ! is_override_key "$1"; do tasks+=("$1"); shift; done
overrides=("$@")
if [[ ${#tasks[@]} -eq 0 ]]; then
  for f in configs/vtab/*.yaml; do
    name=$(basename "$f" .yaml)
    [[ "$name" == base ]] || tasks+=("$name")
  done
fi
check_names task configs/vtab "${tasks[@]}"

# VTAB-1k only resizes (no augmentation), so the frozen backbone's outputs can be cached (computed once per
# image, shared by the whole lr x wd grid and the seeds of a task). Test is evaluated after the last epoch
# only (SOLVER.TEST_PERIOD 0, the default): results.json is the same as testing after every epoch.
cache_opts=()
if [[ "${CACHE:-0}" == 1 && "$METHOD" == linear ]]; then
  cache_opts+=(DATA.CACHE_FEATURES True)
fi
if [[ "${CACHE_FIRST_PASS:-0}" == 1 ]]; then
  cache_opts+=(MODEL.TOAST.CACHE_FIRST_PASS True DATA.CACHE_DIR "$OUTPUT_DIR/cache")
fi

# A task that fails (every grid point diverged, bad data) is reported and the sweep goes on to the next one;
# tune itself scores a single diverged grid point as failed and carries on.
failed=()
for task in "${tasks[@]}"; do
  echo "=== $task ($METHOD)"
  if ! "${launch[@]}" --config-file "configs/vtab/${task}.yaml" DATA.DATAPATH "$VTAB_ROOT" OUTPUT_DIR "$OUTPUT_DIR" \
    "${model_opts[@]}" "${cache_opts[@]}" "${overrides[@]}"; then
    echo "=== $task FAILED (see the messages above); going on with the other tasks" >&2
    failed+=("$task")
  fi
done
python -m visual_classification.summarize "$OUTPUT_DIR" || true
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "failed tasks: ${failed[*]} (re-run the same command after fixing them: finished runs are skipped)" >&2
  exit 1
fi
