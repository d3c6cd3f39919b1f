#!/usr/bin/env bash
# PromptSRC domain generalisation: the xd_train model on each ImageNet variant ($TARGETS).
# Usage: bash scripts/promptsrc/dg_test.sh SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-PromptSRC}
CFG=${CFG:-vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets}
rpp_dg_test "$@"
