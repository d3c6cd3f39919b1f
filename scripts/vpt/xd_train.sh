#!/usr/bin/env bash
# VPT (deep vision prompting) cross-dataset source: all classes of ImageNet (or $SOURCE), $SHOTS shots.
# Usage: bash scripts/vpt/xd_train.sh SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-VPT}
CFG=${CFG:-vit_b16_c2_ep2_batch4_8ctx_cross_datasets}
rpp_xd_train "$@"
