#!/usr/bin/env bash
# CoCoOp cross-dataset source: all classes of ImageNet (or $SOURCE), $SHOTS shots.
# Usage: bash scripts/cocoop/xd_train.sh SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-CoCoOp}
CFG=${CFG:-vit_b16_c4_ep10_batch1_ctxv1}
rpp_xd_train "$@"
