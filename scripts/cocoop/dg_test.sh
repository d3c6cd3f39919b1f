#!/usr/bin/env bash
# CoCoOp domain generalisation: the xd_train model on each ImageNet variant ($TARGETS).
# Usage: bash scripts/cocoop/dg_test.sh SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-CoCoOp}
CFG=${CFG:-vit_b16_c4_ep10_batch1_ctxv1}
rpp_dg_test "$@"
