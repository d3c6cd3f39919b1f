#!/usr/bin/env bash
# PromptSRC few-shot on all classes (official 50-epoch config). GPA N(30, 30) as in the config,
# except N(45, 5) on StanfordCars, Flowers102, FGVCAircraft, DTD and EuroSAT, as the official
# config's comment prescribes (put before the trailing KEY VALUE arguments, so those win).
# Usage: bash scripts/promptsrc/few_shot.sh DATASET SHOTS SEED [KEY VALUE ...]   (env: see scripts/common.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/common.sh
TRAINER=${TRAINER:-PromptSRC}
CFG=${CFG:-vit_b16_c2_ep50_batch4_4+4ctx_few_shot}
if [ $# -ge 3 ] && [ "$CFG" = vit_b16_c2_ep50_batch4_4+4ctx_few_shot ]; then
    case "$(rpp_dataset "$1")" in
        stanford_cars | oxford_flowers | fgvc_aircraft | dtd | eurosat)
            set -- "$1" "$2" "$3" TRAINER.PROMPTSRC.GPA_MEAN 45 TRAINER.PROMPTSRC.GPA_STD 5 "${@:4}" ;;
    esac
fi
rpp_few_shot "$@"
