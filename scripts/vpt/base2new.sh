#!/usr/bin/env bash
# VPT (deep vision prompting) base-to-new: train on the base classes, then test the last epoch on the new ones.
# Usage: bash scripts/vpt/base2new.sh DATASET SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-VPT}
CFG=${CFG:-vit_b16_c2_ep5_batch4_4}
rpp_base2new "$@"
