#!/usr/bin/env bash
# CoCoOp few-shot on all classes.
# Usage: bash scripts/cocoop/few_shot.sh DATASET SHOTS SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-CoCoOp}
CFG=${CFG:-vit_b16_c4_ep10_batch1_ctxv1}
rpp_few_shot "$@"
