#!/usr/bin/env bash
# CoOp cross-dataset source: all classes of ImageNet (or $SOURCE), $SHOTS shots.
# Usage: bash scripts/coop/xd_train.sh SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-CoOp}
CFG=${CFG:-vit_b16_ep50_ctxv1}
rpp_xd_train "$@"
