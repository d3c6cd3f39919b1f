#!/usr/bin/env bash
# PromptSRC cross-dataset: evaluate the ImageNet (or $SOURCE) model on DATASET's test set.
# Usage: bash scripts/promptsrc/xd_test.sh DATASET SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-PromptSRC}
CFG=${CFG:-vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets}
rpp_xd_test "$@"
