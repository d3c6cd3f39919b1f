#!/usr/bin/env bash
# POMP base-to-new: train the prompt on DATASET's base classes, test on base and new, print Base/New/HM.
# Usage: bash scripts/pomp/base2new.sh DATASET SEED [KEY VALUE ...]   (env: scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
rpp_usage "DATASET SEED" 2 $#
TRAINER=POMP
CFG=${CFG:-vit_b16_base2new}
rpp_base2new "$@"
bash scripts/base2new_compare.sh "$1" "$2" "$TRAINER" "$CFG"
