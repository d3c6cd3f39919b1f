#!/usr/bin/env bash
# IVLP (independent V-L prompting) domain generalisation: the xd_train model on each ImageNet variant ($TARGETS).
# Usage: bash scripts/ivlp/dg_test.sh SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-IVLP}
CFG=${CFG:-vit_b16_c2_ep2_batch4_2+2ctx_cross_datasets}
rpp_dg_test "$@"
