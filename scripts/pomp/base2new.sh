#!/usr/bin/env bash
# POMP base-to-new: train the prompt on DATASET's base classes, test on base and new.
# Usage: bash scripts/pomp/base2new.sh DATASET SEED [KEY VALUE ...]   (env: scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=POMP
CFG=${CFG:-vit_b16_base2new}
rpp_base2new "$@"
