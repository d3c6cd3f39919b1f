# Sourced by scripts/pomp/{xd,dg}.sh: POMP evaluates its own best epoch (model-best).
TRAINER=POMP
EVAL_TRAINER=POMP
CFG=${CFG:-vit_b16_ep5}
pt_eval_model_args() {
    echo "--model-dir $1"
}
