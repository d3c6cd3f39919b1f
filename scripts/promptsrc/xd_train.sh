#!/usr/bin/env bash
# PromptSRC cross-dataset source: all classes of ImageNet (or $SOURCE), $SHOTS shots.
# Usage: bash scripts/promptsrc/xd_train.sh SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-PromptSRC}
CFG=${CFG:-vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets}
rpp_xd_train "$@"
