#!/usr/bin/env bash
# When does refocusing help? A class-disjoint pre-tuning experiment on real DINOv2 weights, offline, on the CPU.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: bash scripts/refocus_experiment.sh [KEY VALUE ...]

Runs python -m experiments.vision_refocus: digit scenes among distractors on real textures (no MNIST image in two
splits, fragments included). Source digits (thousands of scenes) train TOAST's top-down path (pre-tuning)
and, for the "-seq" baselines, each baseline itself, for the same epochs; target digits (disjoint classes)
get VTAB-1k's shape (800 train / 200 val / 1,000 test). Input size chosen with a linear probe on val; every
method's lr grid scored on val and grown past an edge optimum (up to 2 steps), then one run per seed on
test. The best TOAST on val is compared with every baseline, paired by seed (mean and 95 % t interval; a
win only where the interval excludes 0); a budget curve runs the best TOAST and the two best baselines at
each of BUDGETS target epochs (first 3 seeds). Writes OUT/summary.md (table, paired intervals, budget
curve), summary.csv, summary.png, paired.png, budget.png, refocus_grid_*.png and report.md (chosen size,
every lr grid with its val scores, edge and collapse flags, time per stage). Re-running resumes.

Cost on a 2-core CPU with JOBS=2 (measured): the one-seed mode SEEDS=0 BUDGETS=none 42 min from an empty
OUT (digits, 56 px; the five source runs are 37 of its 82 run-minutes); the budget curve BUDGETS "2 6 20"
1 h 3 min more; seeds 1-4 about 31 min more (estimated from one-thread runs; 1 h 1 min as measured one
process at one thread); ~2 h 16 min in all, 2 h 46 min at most. DOMAIN=photos is a second run of the same
protocol (52 min one seed before the start grids, with other work beside it; not timed since) at 56 px
(SIZES=56; 84 px, 37 tokens against 17, costs more and was not timed).

environment:
  DOMAIN          digits (default: MNIST digits among digit fragments) or photos (patches of ten
                  scikit-image photographs among patch fragments, on the same textures; classes 0-4 astronaut,
                  camera, coffee, chelsea, rocket; 5-9 hubble_deep_field, moon, coins, retina, ihc)
  SOURCE_CLASSES  source classes: digits, or photograph indices (default: "0 1 2 3 4")
  TARGET_CLASSES  target classes, disjoint from the source (default: "5 6 7 8 9")
  SEEDS           seeds of the final runs (default: "0 1 2 3 4"; SEEDS=0 for the one-seed mode)
  OUT             output folder (default: output/refocus, output/refocus_photos for DOMAIN=photos)
  METHODS         subset of (default: all): linear bias lora prompt end2end bias-seq lora-seq prompt-seq
                  end2end-seq toast toast-B0 toast-pretuned toast-lite-pretuned
                  (-seq: trained on the source first, then on the target; linear has no -seq: it trains
                  nothing but the head)
  BUDGETS         target epochs of the budget curve (default: "2 6 20"; BUDGETS=none skips it)
  SIZES           candidate input sizes in px (default: "56 84"; 112 px costs 1.5x and probed no better)
  EPOCHS          target epochs of the main table (default: experiments/vision_refocus/refocus.yaml's, 2)
  PRETUNE_EPOCHS  source epochs, of the pre-tuning and of every -seq method's source run (default: 8)
  SOURCE_TRAIN    source training scenes (default: 2000)
  TEST            target test scenes (default: 1000)
  PRETUNE_LENGTHS the pre-tuning curve (default: none): source lengths as multiples of PRETUNE_EPOCHS, e.g.
                  "0 1 4 16"; toast-pretuned and every -seq method at each (0: the fresh toast and the plain
                  baselines), each length with its own source runs, grids and seeds; paired by seed at each
                  length (pretune_curve.json, pretune_curve.png). Cost grows with the longest: 16x is the five
                  source runs at 128 epochs (about 16 x 37 run-minutes on digits, estimated)
  GRID            3: each method's lr grid on val (default); 1: its middle lr, fixed (smoke tests; no
                  budget curve). The linear probe is L-BFGS on cached features; its grid is its L2 strength
  HEAD_FACTORS    factors of each method's head multiplier, each with its own lr grid, the best on val kept
                  (e.g. "0.3 1 3": three grids per method, about 3x the grid stage; default "1": the
                  method's own multiplier, not chosen on val)
  SOURCE_SEEDS    shared (default): one source run (seed 0) for every target seed, so the paired interval
                  omits the source run's variance; per-seed: one source run per target seed (the five source
                  runs once per seed: about 37 run-minutes more per extra seed on digits)
  JOBS            runs side by side, each in its own process with an equal share of the cores (default: 2
                  on a CPU with 2+ cores, 1 on a GPU); a run starts once the source run it needs is done
  KEY VALUE       any config override, passed to every run

On a CPU shared with other jobs, set OMP_NUM_THREADS=1 (each of the JOBS processes then keeps to one thread):
two processes that each keep torch's default thread pool on 2 cores slowed each other about 10x here.
USAGE
}

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then usage; exit 0; fi
cd "$(dirname "$0")/.."

# The list options come first and a single-valued one last, so that KEY VALUE overrides are not read as list items.
# shellcheck disable=SC2206  # the lists are space-separated on purpose
args=(--source-classes ${SOURCE_CLASSES:-0 1 2 3 4} --target-classes ${TARGET_CLASSES:-5 6 7 8 9}
  --seeds ${SEEDS:-0 1 2 3 4} --sizes ${SIZES:-56 84})
# shellcheck disable=SC2206
[[ -n "${METHODS:-}" ]] && args+=(--methods ${METHODS})
if [[ "${BUDGETS:-}" == "none" ]]; then
  args+=(--budgets)
else
  # shellcheck disable=SC2206
  args+=(--budgets ${BUDGETS:-2 6 20})
fi
[[ -n "${EPOCHS:-}" ]] && args+=(--epochs "$EPOCHS")
[[ -n "${PRETUNE_EPOCHS:-}" ]] && args+=(--pretune-epochs "$PRETUNE_EPOCHS")
[[ -n "${JOBS:-}" ]] && args+=(--jobs "$JOBS")
# shellcheck disable=SC2206
[[ -n "${HEAD_FACTORS:-}" ]] && args+=(--head-factors ${HEAD_FACTORS})
# shellcheck disable=SC2206
[[ -n "${PRETUNE_LENGTHS:-}" ]] && args+=(--pretune-lengths ${PRETUNE_LENGTHS})
[[ -n "${SOURCE_SEEDS:-}" ]] && args+=(--source-seeds "$SOURCE_SEEDS")
domain="${DOMAIN:-digits}"
default_out=output/refocus
[[ "$domain" != digits ]] && default_out="output/refocus_$domain"
args+=(--domain "$domain" --out "${OUT:-$default_out}" --source-train "${SOURCE_TRAIN:-2000}" --test "${TEST:-1000}" --grid "${GRID:-3}")
start=$(date +%s)
python -m experiments.vision_refocus "${args[@]}" "$@"
echo "refocus experiment: $(( $(date +%s) - start )) s in all (this invocation)"
