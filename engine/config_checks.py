"""Range and choice checks of the merged config, before anything is built.

yacs checks only a value's type. A batch size of 0, a negative learning rate or a
misspelt optimizer used to surface minutes later, after CLIP and the data were loaded,
as a traceback from deep inside torch or a trainer. ``setup_cfg`` runs
``check_config_values`` once on the merged config, so each such mistake ends the run at
once with one ``ConfigError`` line naming the key, the value and what is allowed.

The allowed sets are imported from the code that uses them (the active engine's
optimizer, scheduler and transform lists; our precisions, subsample choices, class-token
positions, ...), so the check cannot drift from what is accepted later. The keys of a
trainer's node (``TRAINER.<NODE>.PREC``, ``N_CTX*``, ...) are checked by name in every
node, so a new trainer's keys are covered without an edit here.
"""
import os

from open_clip.tokenizer import DEFAULT_CONTEXT_LENGTH
from yacs.config import CfgNode

from datasets.config_keys import IN21K_CLASS_SETS
from datasets.subsample import SUBSAMPLE_CHOICES
from engine import BACKEND
from engine.bundled.data.data_manager import CORRUPT_IMAGE_POLICIES
from engine.bundled.data.randaugment import MAX_MAGNITUDE
from engine.bundled.optim.lr_scheduler import AVAILABLE_WARMUP_TYPES
from engine.bundled.registry import closest_match
from engine.config_errors import ConfigError
from models.class_prompts import POSITIONS
from models.class_sampling import check_log_base
from models.precision import PRECISIONS
from models.sapl import QKV_INIT_CHOICES, RESIDUAL_CHOICES

# A class prompt is [SOS] context [class name, at least one token] ... [EOT] within the
# text context of every CLIP we load (open_clip's tokenizer length).
MAX_TEXT_CTX = DEFAULT_CONTEXT_LENGTH - 3

# Which weights a finished run tests (Dassl's TrainerX.after_train): the last epoch's or
# the best on the val set; anything else used to mean the last epoch, silently.
FINAL_MODELS = ("last_step", "best_val")

# Keys of any TRAINER.<NODE>, checked by name, with their allowed values.
TRAINER_NODE_CHOICES = {
    "PREC": PRECISIONS,
    "CLASS_TOKEN_POSITION": POSITIONS,
    "QKV_INIT": QKV_INIT_CHOICES,
    "RESIDUAL": RESIDUAL_CHOICES,
}


def check_config_values(cfg):
    """Raise ``ConfigError`` (one line) for the first value out of range or not allowed."""
    _check_data(cfg)
    _check_optim(cfg)
    _check_train(cfg)
    _check_trainer_nodes(cfg)
    _check_folders(cfg)
    return cfg


def engine_choices():
    """(optimizers, LR schedulers, transforms, interpolations) of the active engine."""
    if BACKEND == "dassl":
        from dassl.data.transforms.transforms import AVAI_CHOICES, INTERPOLATION_MODES
        from dassl.optim.lr_scheduler import AVAI_SCHEDS
        from dassl.optim.optimizer import AVAI_OPTIMS

        return AVAI_OPTIMS, AVAI_SCHEDS, AVAI_CHOICES, list(INTERPOLATION_MODES)
    from engine.bundled.data.transforms import AVAILABLE_CHOICES, INTERPOLATION_MODES
    from engine.bundled.optim import AVAILABLE_LR_SCHEDULERS, AVAILABLE_OPTIMIZERS

    return AVAILABLE_OPTIMIZERS, AVAILABLE_LR_SCHEDULERS, AVAILABLE_CHOICES, list(INTERPOLATION_MODES)


# ----------------------------------------------------------------------------
# The sections
# ----------------------------------------------------------------------------

def _check_data(cfg):
    loader = cfg.DATALOADER
    for part in ("TRAIN_X", "TRAIN_U", "TEST"):
        require_range(f"DATALOADER.{part}.BATCH_SIZE", loader[part].BATCH_SIZE, low=1, integer=True)
    require_range("DATALOADER.NUM_WORKERS", loader.NUM_WORKERS, low=0, integer=True)
    require_choice("DATALOADER.CORRUPT_IMAGE", str(loader.CORRUPT_IMAGE).lower(), CORRUPT_IMAGE_POLICIES)

    _, _, transforms, interpolations = engine_choices()
    chosen = cfg.INPUT.TRANSFORMS
    if not isinstance(chosen, (list, tuple)):
        raise ConfigError(f"INPUT.TRANSFORMS must be a list of transform names, got {chosen!r}")
    for name in chosen:
        require_choice("INPUT.TRANSFORMS", name, transforms, in_list=True)
    require_choice("INPUT.INTERPOLATION", cfg.INPUT.INTERPOLATION, interpolations)
    if "randaugment" in chosen:
        require_range("INPUT.RANDAUGMENT_M", cfg.INPUT.RANDAUGMENT_M, low=0, high=MAX_MAGNITUDE, integer=True)

    require_choice("DATASET.SUBSAMPLE_CLASSES", cfg.DATASET.SUBSAMPLE_CLASSES, SUBSAMPLE_CHOICES)
    require_choice("DATASET.IN21K_CLASS_SET", cfg.DATASET.IN21K_CLASS_SET, IN21K_CLASS_SETS)


def _check_optim(cfg):
    optim = cfg.OPTIM
    optimizers, schedulers, _, _ = engine_choices()
    require_choice("OPTIM.NAME", optim.NAME, optimizers)
    require_choice("OPTIM.LR_SCHEDULER", optim.LR_SCHEDULER, schedulers)
    require_range("OPTIM.LR", optim.LR, low=0)
    require_range("OPTIM.MAX_EPOCH", optim.MAX_EPOCH, low=1, integer=True,
                  note="0 would train nothing and report the untrained model")
    _check_stepsize(optim.LR_SCHEDULER, optim.STEPSIZE)
    if _number(optim.WARMUP_EPOCH) and optim.WARMUP_EPOCH > 0:  # read only with warmup on
        require_choice("OPTIM.WARMUP_TYPE", optim.WARMUP_TYPE, AVAILABLE_WARMUP_TYPES)
        lr_key = "WARMUP_CONS_LR" if optim.WARMUP_TYPE == "constant" else "WARMUP_MIN_LR"
        require_range(f"OPTIM.{lr_key}", optim[lr_key], low=0)


def _check_stepsize(scheduler, stepsize):
    steps = stepsize if isinstance(stepsize, (list, tuple)) else None
    if scheduler == "single_step":
        last = steps[-1] if steps else stepsize  # Dassl uses the last of a list
        if not _number(last, integer=True):
            raise ConfigError(
                f"OPTIM.STEPSIZE for single_step must be an integer (epochs between decays; "
                f"<= 0: once, after the last epoch), got {stepsize!r}"
            )
    elif scheduler == "multi_step" and (steps is None or not all(_number(s, True) for s in steps)):
        raise ConfigError(f"OPTIM.STEPSIZE for multi_step must be a list of epochs, got {stepsize!r}")


def _check_train(cfg):
    require_choice("TEST.FINAL_MODEL", cfg.TEST.FINAL_MODEL, FINAL_MODELS)
    require_range("TRAIN.CHECKPOINT_ITERS", cfg.TRAIN.CHECKPOINT_ITERS, low=0, integer=True,
                  note="0 saves only at epoch ends")
    require_range("TRAIN.MAX_NONFINITE_STEPS", cfg.TRAIN.MAX_NONFINITE_STEPS, low=0, integer=True,
                  note="0 never aborts")
    sampling = cfg.TRAINER.CLASS_SAMPLING
    k = sampling.K
    if not _number(k, integer=True) or k < 0 or k == 1:
        raise ConfigError(
            f"TRAINER.CLASS_SAMPLING.K must be 0 (off: every class in every step) or an "
            f"integer >= 2 (the batch's classes plus K - 1 sampled negatives), got {k!r}"
        )
    check_log_base(sampling.LOG_BASE)


def _check_trainer_nodes(cfg):
    for node_name, node in cfg.TRAINER.items():
        if not isinstance(node, CfgNode):
            continue
        for key, value in node.items():
            full_key = f"TRAINER.{node_name}.{key}"
            if key in TRAINER_NODE_CHOICES:
                require_choice(full_key, value, TRAINER_NODE_CHOICES[key])
            elif key.startswith("N_CTX") and key.endswith("_VISION"):
                require_range(full_key, value, low=0, integer=True)
            elif key.startswith("N_CTX"):
                require_range(
                    full_key, value, low=0, high=MAX_TEXT_CTX, integer=True,
                    note=f"a text prompt holds {DEFAULT_CONTEXT_LENGTH} tokens: SOS, the context, "
                         f"at least one class-name token and EOT",
                )


def _check_folders(cfg):
    """The output folder and the data root must not be, or lie under, a file."""
    for key, flag, path in (("OUTPUT_DIR", "--output-dir", cfg.OUTPUT_DIR),
                            ("DATASET.ROOT", "--root", cfg.DATASET.ROOT)):
        if not path:
            continue
        blocker = _file_in_the_way(path)
        if blocker is None:
            continue
        if blocker == os.path.abspath(os.path.expanduser(path)):
            raise ConfigError(f"{key} ({flag}) must be a folder, but {path} is a file")
        raise ConfigError(f"{key} ({flag}) {path} cannot be a folder: {blocker} is a file")


def _file_in_the_way(path):
    """The path itself, or its nearest existing ancestor, when that is not a folder."""
    path = os.path.abspath(os.path.expanduser(path))
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    return None if os.path.isdir(path) else path


# ----------------------------------------------------------------------------
# The checks (every one raises ConfigError naming key, value and what is allowed)
# ----------------------------------------------------------------------------

def require_choice(key, value, choices, in_list=False):
    """``value`` if it is one of ``choices``, else a ConfigError with the closest choice.
    ``in_list``: ``value`` is one item of the list ``key`` holds."""
    choices = list(choices)
    if isinstance(value, str) and value in choices:
        return value
    hint = closest_match(value, choices) if isinstance(value, str) else None
    did_you_mean = f"; did you mean {hint}?" if hint else ""
    if in_list:
        raise ConfigError(f"{key} lists {value!r}, which is not one of {', '.join(choices)}{did_you_mean}")
    raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}{did_you_mean}")


def require_range(key, value, low=None, high=None, integer=False, note=""):
    """``value`` if it is a number (an integer if ``integer``) within [low, high]."""
    if not _number(value, integer) or (low is not None and value < low) or (
            high is not None and value > high):
        kind = "an integer" if integer else "a number"
        if high is None:
            bounds = f">= {low}"
        elif low is None:
            bounds = f"<= {high}"
        else:
            bounds = f"in [{low}, {high}]"
        why = f" ({note})" if note else ""
        raise ConfigError(f"{key} must be {kind} {bounds}{why}, got {value!r}")
    return value


def _number(value, integer=False):
    if isinstance(value, bool):
        return False
    if integer:
        return isinstance(value, int)
    return isinstance(value, (int, float)) and value == value  # NaN is no number here
