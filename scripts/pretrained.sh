# Shared logic of the prompt pre-training sweeps (scripts/rpp, scripts/pomp); sourced after
# scripts/common.sh, never run. A pre-training run trains on all classes of SOURCE
# (default imagenet21k = configs/datasets/imagenet21k.yaml; imagenet_21k is read as that)
# and keeps its best epoch on SOURCE's val split (TEST.FINAL_MODEL best_val in the
# configs); its prompts are then evaluated zero-shot on other datasets.
#
# The caller sets TRAINER (the pre-training trainer, used in folder names), CFG, and
# EVAL_TRAINER with the options that make it evaluate a pre-trained run (see pt_eval).
# Folders follow the cross-dataset layout the results parser reads:
#   ${OUTPUT}/${SOURCE}/${TRAINER}/${CFG}_${SHOTS}shots/seed${SEED}            pre-training
#   ${OUTPUT}/evaluation/${TRAINER}/${CFG}_${SHOTS}shots/${DATASET}/seed${SEED} zero-shot targets

SOURCE=$(rpp_dataset "${SOURCE:-imagenet21k}")
XD_TARGETS=${XD_TARGETS:-"caltech101 oxford_pets stanford_cars oxford_flowers food101 fgvc_aircraft sun397 dtd eurosat ucf101"}
DG_TARGETS=${DG_TARGETS:-"imagenetv2 imagenet_sketch imagenet_a imagenet_r"}

# Pre-training is rpp_xd_train (scripts/common.sh) with SOURCE set above.

# pt_eval DATASET SEED [KEY VALUE ...]: the pre-trained prompts, zero-shot on DATASET.
# PRETRAINED (a run folder) overrides the pre-training folder of this SEED.
pt_eval() {
    rpp_usage "DATASET SEED" 2 $#
    local dataset=$1 seed=$2 model_dir dir cfg_file dataset_file args
    shift 2
    model_dir=${PRETRAINED:-$(rpp_xd_model_dir "$seed")}
    dir=$(rpp_xd_eval_dir "$dataset" "$seed")
    cfg_file=$(rpp_trainer_cfg)
    dataset_file=$(rpp_dataset_cfg "$dataset")
    rpp_load_backbone_opts "$cfg_file"
    # shellcheck disable=SC2046
    args=(--root "$DATA" --seed "$seed" --trainer "$EVAL_TRAINER"
          --dataset-config-file "$dataset_file" --config-file "$cfg_file" --output-dir "$dir"
          --eval-only $(pt_eval_model_args "$model_dir")
          ${RPP_BACKBONE_OPTS[@]+"${RPP_BACKBONE_OPTS[@]}"} "$@")
    rpp_skip_if_done "$dir" eval "${args[@]}" && return 0
    [ -d "$model_dir" ] || rpp_die "no pre-trained run at $model_dir (run pretrain.sh $seed first, or set PRETRAINED)"
    "$PYTHON" train.py "${args[@]}"
}

# pt_eval_each "TARGETS" SEED [KEY VALUE ...]: pt_eval on each dataset of TARGETS
pt_eval_each() {
    rpp_usage "SEED" 2 $#  # TARGETS comes from the script, SEED from its user
    local targets=$1 seed=$2 target
    shift 2
    for target in $targets; do pt_eval "$target" "$seed" "$@"; done
}

