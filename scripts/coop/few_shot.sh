#!/usr/bin/env bash
# CoOp few-shot on all classes; default config by shots as in the CoOp paper (RN50).
# Usage: bash scripts/coop/few_shot.sh DATASET SHOTS SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-CoOp}
case "${1:-}/${2:-}" in
    imagenet/* | */1) CFG=${CFG:-rn50_ep50} ;;
    */2 | */4) CFG=${CFG:-rn50_ep100} ;;
    *) CFG=${CFG:-rn50} ;;
esac
rpp_few_shot "$@"
