#!/usr/bin/env bash
# CoCoOp cross-dataset: evaluate the ImageNet (or $SOURCE) model on DATASET's test set.
# Usage: bash scripts/cocoop/xd_test.sh DATASET SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-CoCoOp}
CFG=${CFG:-vit_b16_c4_ep10_batch1_ctxv1}
rpp_xd_test "$@"
