#!/usr/bin/env bash
# The embedded default job: zero-shot CLIP, then CoOp trained and tested, on the
# generated demo dataset with the built-in tiny CLIP. Runs on a CPU in about a minute.
# Usage: bash scripts/demo.sh [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
SEED=${1:-1}
DATA=${DATA:-data}
OUT=output/demo
CFG=configs/trainers/CoOp/tiny_vit.yaml
DATASET_CFG=configs/datasets/demo.yaml

rm -rf "$OUT/ZeroshotCLIP" "$OUT/CoOp/seed${SEED}"
"$PYTHON" train.py --root "$DATA" --trainer ZeroshotCLIP --dataset-config-file "$DATASET_CFG" \
    --config-file "$CFG" --output-dir "$OUT/ZeroshotCLIP" --eval-only
"$PYTHON" train.py --root "$DATA" --seed "$SEED" --trainer CoOp --dataset-config-file "$DATASET_CFG" \
    --config-file "$CFG" --output-dir "$OUT/CoOp/seed${SEED}" DATASET.NUM_SHOTS 16

echo
echo "Demo results (test accuracy):"
for run in ZeroshotCLIP "CoOp/seed${SEED}"; do
    acc=$(grep -E '^\* accuracy:' "$OUT/$run/log.txt" | tail -n 1)
    printf '  %-14s %s\n' "$run" "$acc"
done
