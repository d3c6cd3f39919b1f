#!/usr/bin/env bash
# RPP base-to-new: train on DATASET's base classes, test on base and new, print Base/New/HM.
# From scratch (trainer RPP), or from pre-trained prompts with PRETRAINED=<RPP run folder>
# (trainer RPP_Transfer). On the demo dataset it also runs zero-shot CLIP and CoOp, so the
# table shows the three side by side (COMPARE="" to skip, or e.g. COMPARE="zsclip coop maple").
# Usage: bash scripts/rpp/base2new.sh DATASET SEED [KEY VALUE ...]   (env: scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
rpp_usage "DATASET SEED" 2 $#
DATASET=$(rpp_dataset "$1")
SEED=$2
if [ "$DATASET" = demo ]; then
    CFG=${CFG:-demo_clip}
    COMPARE=${COMPARE-"zsclip coop"}
else
    CFG=${CFG:-vit_b16_base2new}
    COMPARE=${COMPARE-}
fi
CONFIG_DIR=RPP
if [ -n "${PRETRAINED:-}" ]; then
    [ -d "$PRETRAINED" ] || [ -f "$PRETRAINED" ] || rpp_die "PRETRAINED $PRETRAINED does not exist"
    TRAINER=RPP_Transfer
    rpp_base2new "$@" TRAINER.RPP_TRANSFER.PROMPTS "$PRETRAINED"
else
    TRAINER=RPP
    rpp_base2new "$@"
fi
bash scripts/base2new_compare.sh "$DATASET" "$SEED" "$TRAINER" "$CFG" $COMPARE
