#!/usr/bin/env bash
# RPP prompt pre-training on SOURCE (default imagenet21k; imagenet with CFG=vit_b16_in1k).
# Usage: bash scripts/rpp/pretrain.sh SEED [KEY VALUE ...]
# Env: SOURCE, CFG (default vit_b16_in21k; ablations: vit_b16_in21k_shared_qkv,
# vit_b16_in21k_text_only, vit_b16_in21k_no_kd), and those of scripts/common.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
. scripts/pretrained.sh
TRAINER=RPP
CFG=${CFG:-vit_b16_in21k}
rpp_xd_train "$@"
