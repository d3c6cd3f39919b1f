#!/usr/bin/env bash
# KgCoOp cross-dataset: evaluate the ImageNet (or $SOURCE) model on DATASET's test set.
# Usage: bash scripts/kgcoop/xd_test.sh DATASET SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-KgCoOp}
CFG=${CFG:-vit_b16_ep25_ctxv1_cross_datasets}
rpp_xd_test "$@"
