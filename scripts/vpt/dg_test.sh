#!/usr/bin/env bash
# VPT (deep vision prompting) domain generalisation: the xd_train model on each ImageNet variant ($TARGETS).
# Usage: bash scripts/vpt/dg_test.sh SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-VPT}
CFG=${CFG:-vit_b16_c2_ep2_batch4_8ctx_cross_datasets}
rpp_dg_test "$@"
