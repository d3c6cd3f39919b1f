#!/usr/bin/env bash
# KgCoOp cross-dataset source: all classes of ImageNet (or $SOURCE), $SHOTS shots.
# Usage: bash scripts/kgcoop/xd_train.sh SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-KgCoOp}
CFG=${CFG:-vit_b16_ep25_ctxv1_cross_datasets}
rpp_xd_train "$@"
