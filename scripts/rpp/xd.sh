#!/usr/bin/env bash
# Cross-dataset: pre-trained RPP prompts, zero-shot on DATASET (or on all 10 targets with "all").
# Usage: bash scripts/rpp/xd.sh DATASET|all SEED [KEY VALUE ...]   (env PRETRAINED=run folder)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
. scripts/pretrained.sh
. scripts/rpp/eval_common.sh
if [ "${1:-}" = all ]; then shift; pt_eval_each "$XD_TARGETS" "$@"; else pt_eval "$@"; fi
