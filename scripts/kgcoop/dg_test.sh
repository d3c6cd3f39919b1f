#!/usr/bin/env bash
# KgCoOp domain generalisation: the xd_train model on each ImageNet variant ($TARGETS).
# Usage: bash scripts/kgcoop/dg_test.sh SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-KgCoOp}
CFG=${CFG:-vit_b16_ep25_ctxv1_cross_datasets}
rpp_dg_test "$@"
