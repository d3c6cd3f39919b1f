# Shared logic of the sweep scripts (scripts/<method>/*.sh); sourced, never run.
#
# The caller has cd'ed to the repo root and set TRAINER (and, where it has one, a
# default CFG). Environment knobs, all optional:
#   DATA=data          dataset root (--root)
#   OUTPUT=output      where run folders go
#   CFG=...            trainer config name: configs/trainers/${CONFIG_DIR}/${CFG}.yaml
#   CONFIG_DIR=$TRAINER
#   SHOTS=16           shots for base-to-new and cross-dataset training
#   EPOCHS=N           override OPTIM.MAX_EPOCH (training and the epoch loaded for tests)
#   BACKBONE=NAME      run the recipe on another CLIP, e.g. tiny-vit for a smoke run:
#                      MODEL.BACKBONE.NAME, its INPUT.SIZE, prompt depths capped at its
#                      layers (scripts/backbone_opts.py); training and testing alike
#   PYTHON=python3
# Trailing KEY VALUE arguments after a script's positional ones go to train.py as
# config overrides, for training and testing alike (after BACKBONE's, so they win).
# Dataset names may be spelled as users type them (imagenet_21k, ImageNet-21K): each is
# the config stem it stands for (imagenet21k), in the configs and in folder names alike.
#
# A run is skipped when its folder already holds a log with a final "* accuracy:" line
# and its run record (run_config.json / eval_config.json, engine/run_record.py) matches
# the config asked for. A training run that was interrupted (its folder holds a
# checkpoint, engine/checkpoint_files.py, but no final accuracy) is resumed from its last
# checkpoint with --resume if its record matches; any other run starts fresh. A folder
# holding a run of another config stops the sweep in one line naming the keys, unless
#   RERUN=1            redo such runs: a training run is moved aside (train.py
#                      --overwrite, to <folder>.old-<time>), an evaluation runs again

# A failure inside $(...) stops the script too (bash >= 4.4; older bash lacks the option).
shopt -s inherit_errexit 2>/dev/null || true

PYTHON=${PYTHON:-python3}
DATA=${DATA:-data}
OUTPUT=${OUTPUT:-output}
SHOTS=${SHOTS:-16}

rpp_die() {
    echo "error: $*" >&2
    exit 2
}

rpp_usage() {  # rpp_usage "ARGS" NEEDED GIVEN
    if [ "$3" -lt "$2" ]; then
        echo "usage: bash $0 $1 [KEY VALUE ...]" >&2
        exit 2
    fi
}

rpp_trainer_cfg() {  # path of the trainer config, which must exist
    local file="configs/trainers/${CONFIG_DIR:-$TRAINER}/${CFG}.yaml"
    [ -f "$file" ] || rpp_die "no trainer config $file (set CFG / CONFIG_DIR)"
    echo "$file"
}

# rpp_dataset NAME: the config stem (configs/datasets/<stem>.yaml, also the folder name of
# its runs) that NAME stands for; case, "-" and "_" do not matter (imagenet_21k, ImageNet-21K
# and imagenet21k are one dataset).
rpp_dataset() {
    local wanted file stem
    if [ -f "configs/datasets/$1.yaml" ]; then
        echo "$1"
        return 0
    fi
    wanted=$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')
    wanted=${wanted//[-_]/}
    for file in configs/datasets/*.yaml; do
        stem=${file##*/}
        stem=${stem%.yaml}
        if [ "${stem//[-_]/}" = "$wanted" ]; then
            echo "$stem"
            return 0
        fi
    done
    rpp_die "no dataset config configs/datasets/$1.yaml"
}

rpp_dataset_cfg() {  # rpp_dataset_cfg DATASET
    local stem
    stem=$(rpp_dataset "$1")
    echo "configs/datasets/${stem}.yaml"
}

# rpp_load_backbone_opts CFG_FILE: RPP_BACKBONE_OPTS = the overrides that put CFG_FILE's
# recipe on BACKBONE (none without it); computed once per script and config.
RPP_BACKBONE_OPTS=()
RPP_BACKBONE_OPTS_FOR=""
rpp_load_backbone_opts() {
    local key="${BACKBONE:-}|$1" words word
    [ "$key" = "$RPP_BACKBONE_OPTS_FOR" ] && return 0
    RPP_BACKBONE_OPTS=()
    if [ -n "${BACKBONE:-}" ]; then
        words=$("$PYTHON" scripts/backbone_opts.py "$BACKBONE" "$1") || exit 2
        while IFS= read -r word; do RPP_BACKBONE_OPTS+=("$word"); done <<< "$words"
        echo "BACKBONE=${BACKBONE}: ${RPP_BACKBONE_OPTS[*]}"
    fi
    RPP_BACKBONE_OPTS_FOR=$key
}

# rpp_is_done DIR train|eval: does a log in DIR end its run with an accuracy line?
# Training logs count only an accuracy printed after "Finish training" (per-epoch val
# results do not); eval-only logs any. Re-runs write log.txt-<time>, so all are read.
rpp_is_done() {
    local dir=$1 mode=$2 log
    for log in "$dir"/log.txt "$dir"/log.txt-*; do
        [ -f "$log" ] || continue
        if awk -v mode="$mode" '
            /^Finish(ed)? training/ { finished = 1 }
            /^\* accuracy:/ { if (mode != "train" || finished) found = 1 }
            END { exit found ? 0 : 1 }' "$log"; then
            return 0
        fi
    done
    return 1
}

# rpp_same_config finished|resume DIR TRAIN_PY_ARGS...: does DIR hold a run of the config
# these train.py arguments define? Its record (DIR/run_config.json or eval_config.json,
# engine/run_record.py) is compared by tools/run_record.py. True (0) when it matches or
# DIR has no record (an older run); a different config stops the sweep in one line
# naming the keys, unless RERUN=1, which returns 1: the caller redoes the run.
rpp_same_config() {
    local kind=$1 dir=$2 differing status=0
    shift 2
    differing=$("$PYTHON" -m tools.run_record "$kind" "$@") || status=$?
    case $status in
        0) return 0 ;;
        1)
            if [ "${RERUN:-}" = 1 ]; then
                echo "RERUN=1: $dir holds a run of another config ($differing); redoing it."
                return 1
            fi
            rpp_die "$dir holds a run of another config ($differing); run again with RERUN=1" \
                "to redo it (a training run is moved aside to $dir.old-<time>), or set OUTPUT" \
                "to another folder"
            ;;
        *) exit 2 ;;
    esac
}

rpp_skipping() {
    echo "Results are available in $1; skipping this run (delete the folder to redo it)."
}

# rpp_skip_if_done DIR train|eval [TRAIN_PY_ARGS...]: true (0) when the run is skipped:
# DIR holds its result and, given the run's train.py arguments, a record of the same config.
rpp_skip_if_done() {
    local dir=$1 mode=$2
    shift 2
    rpp_is_done "$dir" "$mode" || return 1
    if [ $# -gt 0 ] && ! rpp_same_config finished "$dir" "$@"; then
        return 1
    fi
    rpp_skipping "$dir"
}

# rpp_max_epoch CFG_FILE [KEY VALUE ...]: the epoch the last checkpoint is saved at,
# i.e. OPTIM.MAX_EPOCH as train.py sees it: the trailing overrides (which come last on
# its command line), else EPOCHS, else the file, else the engine's default.
rpp_max_epoch() {
    local file=$1 epoch=""
    shift
    while [ $# -ge 2 ]; do
        if [ "$1" = "OPTIM.MAX_EPOCH" ]; then epoch=$2; fi
        shift 2
    done
    if [ -z "$epoch" ]; then epoch=${EPOCHS:-}; fi
    if [ -z "$epoch" ]; then
        epoch=$("$PYTHON" -c 'import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1])) or {}
print((cfg.get("OPTIM") or {}).get("MAX_EPOCH", ""))' "$file")
    fi
    if [ -z "$epoch" ]; then
        epoch=$("$PYTHON" -c 'from engine import get_cfg_default; print(get_cfg_default().OPTIM.MAX_EPOCH)')
    fi
    echo "$epoch"
}

# rpp_has_checkpoint DIR: does DIR hold a checkpoint to resume from? Asked of the one
# definition train.py and --resume use (engine/checkpoint_files.py): a checkpoint file
# without its pointer (a kill between the two writes) counts and resumes from its epoch.
rpp_has_checkpoint() {
    "$PYTHON" -m tools.has_checkpoint "$1"
}

rpp_epoch_opts() {  # the EPOCHS override as config opts (nothing when unset)
    if [ -n "${EPOCHS:-}" ]; then
        echo "OPTIM.MAX_EPOCH $EPOCHS"
    fi
}

rpp_require_model() {  # rpp_require_model MODEL_DIR EPOCH
    if ! compgen -G "$1/*/model.pth.tar-$2" > /dev/null; then
        rpp_die "no checkpoint of epoch $2 under $1 (train it first)"
    fi
}

# rpp_train DIR DATASET SUBSAMPLE SHOTS SEED [KEY VALUE ...]
rpp_train() {
    local dir=$1 dataset=$2 subsample=$3 shots=$4 seed=$5 cfg_file dataset_file
    local flags opts mode=()
    shift 5
    cfg_file=$(rpp_trainer_cfg)
    dataset_file=$(rpp_dataset_cfg "$dataset")
    rpp_load_backbone_opts "$cfg_file"
    flags=(--root "$DATA" --seed "$seed" --trainer "$TRAINER" --dataset-config-file "$dataset_file"
           --config-file "$cfg_file" --output-dir "$dir")
    # shellcheck disable=SC2046
    opts=(${RPP_BACKBONE_OPTS[@]+"${RPP_BACKBONE_OPTS[@]}"}
          DATASET.NUM_SHOTS "$shots" DATASET.SUBSAMPLE_CLASSES "$subsample" $(rpp_epoch_opts) "$@")
    if rpp_is_done "$dir" train; then
        if rpp_same_config finished "$dir" "${flags[@]}" "${opts[@]}"; then
            rpp_skipping "$dir"
            return 0
        fi
        mode=(--overwrite)
    elif rpp_has_checkpoint "$dir"; then
        # train.py refuses a folder holding checkpoints unless told what to do with them;
        # a sweep re-run means "finish what was started", so continue the interrupted run.
        if rpp_same_config resume "$dir" "${flags[@]}" "${opts[@]}"; then
            echo "Resuming the interrupted run in $dir from its last checkpoint (--resume)."
            mode=(--resume)
        else
            mode=(--overwrite)
        fi
    else
        echo "Training a new run in $dir."
    fi
    "$PYTHON" train.py "${flags[@]}" ${mode[@]+"${mode[@]}"} "${opts[@]}"
}

# rpp_test DIR MODEL_DIR DATASET SUBSAMPLE SEED [KEY VALUE ...]: eval the last epoch.
rpp_test() {
    local dir=$1 model_dir=$2 dataset=$3 subsample=$4 seed=$5 cfg_file dataset_file epoch
    local flags opts
    shift 5
    cfg_file=$(rpp_trainer_cfg)
    dataset_file=$(rpp_dataset_cfg "$dataset")
    epoch=$(rpp_max_epoch "$cfg_file" "$@")
    rpp_load_backbone_opts "$cfg_file"
    flags=(--root "$DATA" --seed "$seed" --trainer "$TRAINER" --dataset-config-file "$dataset_file"
           --config-file "$cfg_file" --output-dir "$dir"
           --model-dir "$model_dir" --load-epoch "$epoch" --eval-only)
    # shellcheck disable=SC2046
    opts=(${RPP_BACKBONE_OPTS[@]+"${RPP_BACKBONE_OPTS[@]}"}
          DATASET.SUBSAMPLE_CLASSES "$subsample" $(rpp_epoch_opts) "$@")
    rpp_skip_if_done "$dir" eval "${flags[@]}" "${opts[@]}" && return 0
    rpp_require_model "$model_dir" "$epoch"
    "$PYTHON" train.py "${flags[@]}" "${opts[@]}"
}

# rpp_base2new DATASET SEED [KEY VALUE ...]: train on base classes, test on new ones.
rpp_base2new() {
    rpp_usage "DATASET SEED" 2 $#
    local dataset seed=$2 common train_dir test_dir
    dataset=$(rpp_dataset "$1")
    shift 2
    common="${dataset}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${seed}"
    train_dir="${OUTPUT}/base2new/train_base/${common}"
    test_dir="${OUTPUT}/base2new/test_new/${common}"
    rpp_train "$train_dir" "$dataset" base "$SHOTS" "$seed" "$@"
    rpp_test "$test_dir" "$train_dir" "$dataset" new "$seed" DATASET.NUM_SHOTS "$SHOTS" "$@"
}

rpp_xd_model_dir() {  # rpp_xd_model_dir SEED: the cross-dataset source model's folder
    local source
    source=$(rpp_dataset "${SOURCE:-imagenet}")
    echo "${OUTPUT}/${source}/${TRAINER}/${CFG}_${SHOTS}shots/seed$1"
}

# rpp_xd_train SEED [KEY VALUE ...]: train on all classes of SOURCE (default imagenet).
rpp_xd_train() {
    rpp_usage "SEED" 1 $#
    local seed=$1 model_dir
    shift
    model_dir=$(rpp_xd_model_dir "$seed")
    rpp_train "$model_dir" "${SOURCE:-imagenet}" all "$SHOTS" "$seed" "$@"
}

rpp_xd_eval_dir() {  # rpp_xd_eval_dir DATASET SEED: where a target's evaluation goes
    local dataset
    dataset=$(rpp_dataset "$1")
    echo "${OUTPUT}/evaluation/${TRAINER}/${CFG}_${SHOTS}shots/${dataset}/seed$2"
}

# rpp_xd_test DATASET SEED [KEY VALUE ...]: evaluate the source model on a target's test set.
rpp_xd_test() {
    rpp_usage "DATASET SEED" 2 $#
    local dataset=$1 seed=$2 eval_dir model_dir
    shift 2
    eval_dir=$(rpp_xd_eval_dir "$dataset" "$seed")
    model_dir=$(rpp_xd_model_dir "$seed")
    rpp_test "$eval_dir" "$model_dir" "$dataset" all "$seed" "$@"
}

# rpp_dg_test SEED [KEY VALUE ...]: rpp_xd_test on each ImageNet variant (TARGETS).
rpp_dg_test() {
    rpp_usage "SEED" 1 $#
    local seed=$1 target
    shift
    for target in ${TARGETS:-imagenetv2 imagenet_sketch imagenet_a imagenet_r}; do
        rpp_xd_test "$target" "$seed" "$@"
    done
}

# rpp_few_shot DATASET SHOTS SEED [KEY VALUE ...]: train and test on all classes.
rpp_few_shot() {
    rpp_usage "DATASET SHOTS SEED" 3 $#
    local dataset shots=$2 seed=$3
    dataset=$(rpp_dataset "$1")
    shift 3
    rpp_train "${OUTPUT}/${dataset}/${TRAINER}/${CFG}_${shots}shots/seed${seed}" \
        "$dataset" all "$shots" "$seed" "$@"
}
