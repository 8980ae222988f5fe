#!/usr/bin/env bash
# When does refocusing help? A class-disjoint pre-tuning experiment on real DINOv2 weights, offline, on the CPU.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: bash scripts/refocus_experiment.sh [KEY VALUE ...]

Runs python -m experiments.refocus: digit scenes among distractors on real textures,
source digits pre-tune the top-down path (thousands of scenes), target digits (disjoint classes) get
VTAB-1k's shape (800 train / 200 val / 1,000 test); input size chosen with a linear probe on val; every
method (linear, bias, lora, prompt, toast fresh, toast B = 0, toast pre-tuned, toast-lite pre-tuned) with
its lr picked on val by tune, then one run per seed on test. Writes OUT/summary.md, summary.csv,
summary.png, refocus_grid_*.png and report.md (chosen size, lrs, time per stage). Re-running resumes.

environment:
  SOURCE_CLASSES  pre-tuning digits (default: "0 1 2 3 4")
  TARGET_CLASSES  target digits, disjoint from the source (default: "5 6 7 8 9")
  SEEDS           seeds of the final runs (default: "0 1 2"; SEEDS=0 for one)
  OUT             output folder (default: output/refocus)
  METHODS         subset of: linear bias lora prompt toast toast-B0 toast-pretuned toast-lite-pretuned
  SIZES           candidate input sizes in px (default: "56 84"; 112 px costs 1.5x and probed no better)
  EPOCHS          target epochs (default: experiments/configs/refocus.yaml's SOLVER.TOTAL_EPOCH)
  PRETUNE_EPOCHS  source epochs (default: 8)
  SOURCE_TRAIN    source training scenes (default: 2000)
  TEST            target test scenes (default: 1000)
  GRID            3: each method's lr grid on val (default); 1: its middle lr, fixed (smoke tests)
  KEY VALUE       any config override, passed to every run
USAGE
}

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then usage; exit 0; fi
cd "$(dirname "$0")/.."

# shellcheck disable=SC2206  # the lists are space-separated on purpose
args=(--out "${OUT:-output/refocus}" --source-classes ${SOURCE_CLASSES:-0 1 2 3 4}
  --target-classes ${TARGET_CLASSES:-5 6 7 8 9} --seeds ${SEEDS:-0 1 2} --sizes ${SIZES:-56 84}
  --source-train "${SOURCE_TRAIN:-2000}" --test "${TEST:-1000}" --grid "${GRID:-3}")
# shellcheck disable=SC2206
[[ -n "${METHODS:-}" ]] && args+=(--methods ${METHODS})
[[ -n "${EPOCHS:-}" ]] && args+=(--epochs "$EPOCHS")
[[ -n "${PRETUNE_EPOCHS:-}" ]] && args+=(--pretune-epochs "$PRETUNE_EPOCHS")
start=$(date +%s)
python -m experiments.refocus "${args[@]}" "$@"
echo "refocus experiment: $(( $(date +%s) - start )) s in all (this invocation)"
