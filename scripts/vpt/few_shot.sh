#!/usr/bin/env bash
# VPT (deep vision prompting) few-shot on all classes (no official few-shot config: the base-to-new one).
# Usage: bash scripts/vpt/few_shot.sh DATASET SHOTS SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-VPT}
CFG=${CFG:-vit_b16_c2_ep5_batch4_4}
rpp_few_shot "$@"
