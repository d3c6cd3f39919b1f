#!/usr/bin/env bash
# VPT (deep vision prompting) cross-dataset: evaluate the ImageNet (or $SOURCE) model on DATASET's test set.
# Usage: bash scripts/vpt/xd_test.sh DATASET SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-VPT}
CFG=${CFG:-vit_b16_c2_ep2_batch4_8ctx_cross_datasets}
rpp_xd_test "$@"
