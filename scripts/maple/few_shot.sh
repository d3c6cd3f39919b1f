#!/usr/bin/env bash
# MaPLe few-shot on all classes (no official few-shot config: the base-to-new one).
# Usage: bash scripts/maple/few_shot.sh DATASET SHOTS SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-MaPLe}
CFG=${CFG:-vit_b16_c2_ep5_batch4_2ctx}
rpp_few_shot "$@"
