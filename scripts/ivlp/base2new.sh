#!/usr/bin/env bash
# IVLP (independent V-L prompting) base-to-new: train on the base classes, then test the last epoch on the new ones.
# Usage: bash scripts/ivlp/base2new.sh DATASET SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-IVLP}
CFG=${CFG:-vit_b16_c2_ep5_batch4_2+2ctx}
rpp_base2new "$@"
