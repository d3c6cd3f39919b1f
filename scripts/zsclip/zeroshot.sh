#!/usr/bin/env bash
# Zero-shot CLIP (hand-crafted template) on DATASET's test set: all, base or new classes.
# Usage: bash scripts/zsclip/zeroshot.sh DATASET [base|new|all] [KEY VALUE ...]   (env: see scripts/common.sh; SEED)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-ZeroshotCLIP}
CONFIG_DIR=${CONFIG_DIR:-CoOp}
CFG=${CFG:-vit_b16}
rpp_usage "DATASET [base|new|all]" 1 $#
DATASET=$(rpp_dataset "$1")
SUB=all
case "${2:-}" in
    base | new | all) SUB=$2; shift ;;
    "" | *.*) ;;  # none, or the first KEY of the overrides
    *) rpp_die "the class subset must be base, new or all, got '$2'" ;;
esac
shift
case "$SUB" in
    all) DIR="${OUTPUT}/${TRAINER}/${CFG}/${DATASET}" ;;
    # the base-to-new layout of the trained methods (SEED only names the folder), so the
    # results parser puts zero-shot CLIP in the same table
    base) DIR="${OUTPUT}/base2new/train_base/${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED:-1}" ;;
    new) DIR="${OUTPUT}/base2new/test_new/${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED:-1}" ;;
esac
CFG_FILE=$(rpp_trainer_cfg)
DATASET_FILE=$(rpp_dataset_cfg "$DATASET")
rpp_load_backbone_opts "$CFG_FILE"
ARGS=(--root "$DATA" --trainer "$TRAINER" --dataset-config-file "$DATASET_FILE"
      --config-file "$CFG_FILE" --output-dir "$DIR" --eval-only
      ${RPP_BACKBONE_OPTS[@]+"${RPP_BACKBONE_OPTS[@]}"} DATASET.SUBSAMPLE_CLASSES "$SUB" "$@")
rpp_skip_if_done "$DIR" eval "${ARGS[@]}" && exit 0
"$PYTHON" train.py "${ARGS[@]}"
