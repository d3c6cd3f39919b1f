#!/usr/bin/env bash
# CoCoOp base-to-new: train on the base classes, then test the last epoch on the new ones.
# Usage: bash scripts/cocoop/base2new.sh DATASET SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-CoCoOp}
CFG=${CFG:-vit_b16_c4_ep10_batch1_ctxv1}
rpp_base2new "$@"
