#!/usr/bin/env bash
# Linear-probe CLIP few-shot on all classes (CoOp's lpclip protocol): features with the test
# transform, C searched on the few-shot val split, test accuracy of the fitted classifier.
# Default config RN50, the backbone lpclip uses; CFG=vit_b16 for ViT-B/16.
# Usage: bash scripts/lpclip/few_shot.sh DATASET SHOTS SEED [KEY VALUE ...]   (env: see scripts/common.sh)
# Output: $OUTPUT/DATASET/LinearProbeCLIP/${CFG}_${SHOTS}shots/seed${SEED}, which
#   python3 tools/parse_results.py fewshot --method LinearProbeCLIP --shots SHOTS   reads.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-LinearProbeCLIP}
CFG=${CFG:-rn50}
rpp_few_shot "$@"
