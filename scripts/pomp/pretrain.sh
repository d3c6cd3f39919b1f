#!/usr/bin/env bash
# POMP prompt pre-training on SOURCE (default imagenet21k), the released recipe.
# Usage: bash scripts/pomp/pretrain.sh SEED [KEY VALUE ...]
# Env: SOURCE, CFG (vit_b16_ep5 = length 4, default; vit_b16_ep20 = length 16;
# vit_b16_ep5_loge = natural-log correction; vit_b16_in1k with SOURCE=imagenet).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
. scripts/pretrained.sh
TRAINER=POMP
CFG=${CFG:-vit_b16_ep5}
rpp_xd_train "$@"
