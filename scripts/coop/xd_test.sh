#!/usr/bin/env bash
# CoOp cross-dataset: evaluate the ImageNet (or $SOURCE) model on DATASET's test set.
# Usage: bash scripts/coop/xd_test.sh DATASET SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-CoOp}
CFG=${CFG:-vit_b16_ep50_ctxv1}
rpp_xd_test "$@"
