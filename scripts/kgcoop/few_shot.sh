#!/usr/bin/env bash
# KgCoOp few-shot on all classes (the paper: 4 shots; batch 32 as the authors say, issue #4).
# Usage: bash scripts/kgcoop/few_shot.sh DATASET SHOTS SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-KgCoOp}
CFG=${CFG:-vit_b16_ep100_ctxv1_few_shot}
rpp_few_shot "$@"
