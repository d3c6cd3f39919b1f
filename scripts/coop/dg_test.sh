#!/usr/bin/env bash
# CoOp domain generalisation: the xd_train model on each ImageNet variant ($TARGETS).
# Usage: bash scripts/coop/dg_test.sh SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-CoOp}
CFG=${CFG:-vit_b16_ep50_ctxv1}
rpp_dg_test "$@"
