#!/usr/bin/env bash
# MaPLe domain generalisation: the xd_train model on each ImageNet variant ($TARGETS).
# Usage: bash scripts/maple/dg_test.sh SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-MaPLe}
CFG=${CFG:-vit_b16_c2_ep5_batch4_2ctx_cross_datasets}
rpp_dg_test "$@"
