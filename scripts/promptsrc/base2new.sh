#!/usr/bin/env bash
# PromptSRC base-to-new: train on the base classes, then test the last (GPA) epoch on the new ones.
# Usage: bash scripts/promptsrc/base2new.sh DATASET SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-PromptSRC}
CFG=${CFG:-vit_b16_c2_ep20_batch4_4+4ctx}
rpp_base2new "$@"
