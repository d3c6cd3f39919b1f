#!/usr/bin/env bash
# Base-to-new comparison on one dataset and seed: runs the baselines named after TRAINER
# and CFG (each skipped when its results exist) and prints Base/New/HM side by side for
# TRAINER/CFG and them. Called at the end of scripts/rpp/base2new.sh; usable on its own.
# Usage: bash scripts/base2new_compare.sh DATASET SEED TRAINER CFG [zsclip|coop|cocoop|kgcoop|maple|ivlp|vpt ...]
# A baseline uses configs/trainers/<Trainer>/${CFG}.yaml when it exists, else BASELINE_CFG
# (default vit_b16_ep50_ctxv1-style defaults of its own sweep script).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
rpp_usage "DATASET SEED TRAINER CFG [BASELINE ...]" 4 $#
DATASET=$(rpp_dataset "$1")
SEED=$2
MAIN_TRAINER=$3
MAIN_CFG=$4
shift 4

baseline_cfg() {  # baseline_cfg CONFIG_DIR: the main CFG if that trainer has it
    if [ -f "configs/trainers/$1/${MAIN_CFG}.yaml" ]; then echo "$MAIN_CFG"; else echo "${BASELINE_CFG:-}"; fi
}

METHODS=("--method" "${MAIN_TRAINER}/${MAIN_CFG}")
for baseline in "$@"; do
    case "$baseline" in
        zsclip)
            cfg=$(baseline_cfg CoOp)
            [ -n "$cfg" ] || rpp_die "zsclip: no configs/trainers/CoOp/${MAIN_CFG}.yaml; set BASELINE_CFG"
            for sub in base new; do
                SEED=$SEED CONFIG_DIR=CoOp CFG=$cfg bash scripts/zsclip/zeroshot.sh "$DATASET" "$sub"
            done
            METHODS+=("--method" "ZeroshotCLIP/${cfg}")
            ;;
        coop | cocoop | kgcoop | maple | ivlp | vpt)
            case "$baseline" in
                coop) trainer=CoOp ;; cocoop) trainer=CoCoOp ;; kgcoop) trainer=KgCoOp ;; maple) trainer=MaPLe ;;
                ivlp) trainer=IVLP ;; vpt) trainer=VPT ;;
            esac
            cfg=$(baseline_cfg "$trainer")
            CFG=$cfg bash "scripts/${baseline}/base2new.sh" "$DATASET" "$SEED"
            METHODS+=("--method" "${trainer}${cfg:+/$cfg}")
            ;;
        *) rpp_die "unknown baseline '$baseline' (zsclip coop cocoop kgcoop maple ivlp vpt)" ;;
    esac
done

"$PYTHON" tools/parse_results.py base2new --output "$OUTPUT" --shots "$SHOTS" \
    --datasets "$DATASET" --seeds "$SEED" "${METHODS[@]}"
