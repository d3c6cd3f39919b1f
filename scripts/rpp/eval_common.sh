# Sourced by scripts/rpp/{xd,dg}.sh: pre-trained RPP prompts are evaluated by RPP_Transfer.
TRAINER=RPP
EVAL_TRAINER=RPP_Transfer
CFG=${CFG:-vit_b16_in21k}
pt_eval_model_args() {  # the run's best (else last) prompts; no teacher needed to evaluate
    echo "TRAINER.RPP_TRANSFER.PROMPTS $1 TRAINER.RPP.KD False"
}
