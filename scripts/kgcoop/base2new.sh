#!/usr/bin/env bash
# KgCoOp base-to-new: train on the base classes, then test the last epoch on the new ones.
# Usage: bash scripts/kgcoop/base2new.sh DATASET SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-KgCoOp}
CFG=${CFG:-vit_b16_ep100_ctxv1}
rpp_base2new "$@"
