#!/usr/bin/env bash
# IVLP (independent V-L prompting) cross-dataset source: all classes of ImageNet (or $SOURCE), $SHOTS shots.
# Usage: bash scripts/ivlp/xd_train.sh SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-IVLP}
CFG=${CFG:-vit_b16_c2_ep2_batch4_2+2ctx_cross_datasets}
rpp_xd_train "$@"
