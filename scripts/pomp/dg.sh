#!/usr/bin/env bash
# Domain generalisation: the pre-trained POMP prompt, zero-shot on ImageNet-V2/Sketch/A/R.
# Usage: bash scripts/pomp/dg.sh SEED [KEY VALUE ...]   (env PRETRAINED=run folder, DG_TARGETS)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
. scripts/pretrained.sh
. scripts/pomp/eval_common.sh
pt_eval_each "$DG_TARGETS" "$@"
