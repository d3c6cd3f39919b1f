#!/usr/bin/env bash
# MaPLe base-to-new: train on the base classes, then test the last epoch on the new ones.
# Usage: bash scripts/maple/base2new.sh DATASET SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-MaPLe}
CFG=${CFG:-vit_b16_c2_ep5_batch4_2ctx}
rpp_base2new "$@"
