#!/usr/bin/env bash
# CoOp base-to-new: train on the base classes, then test the last epoch on the new ones.
# Usage: bash scripts/coop/base2new.sh DATASET SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-CoOp}
if [ "${1:-}" = imagenet ]; then CFG=${CFG:-vit_b16_ep50_ctxv1}; else CFG=${CFG:-vit_b16_ctxv1}; fi
rpp_base2new "$@"
