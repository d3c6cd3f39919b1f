#!/usr/bin/env bash
# Cross-dataset: the pre-trained POMP prompt, zero-shot on DATASET (or all 10 targets with "all").
# Usage: bash scripts/pomp/xd.sh DATASET|all SEED [KEY VALUE ...]   (env PRETRAINED=run folder)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
. scripts/pretrained.sh
. scripts/pomp/eval_common.sh
if [ "${1:-}" = all ]; then shift; pt_eval_each "$XD_TARGETS" "$@"; else pt_eval "$@"; fi
