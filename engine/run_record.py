"""What defines a run, recorded in its output folder, so a folder is never reused for
another config without a word.

``train.py`` writes the merged config (every key, flattened to ``A.B.C``), minus the keys
in ``NOT_PART_OF_A_RUN``, to ``OUTPUT_DIR/run_config.json`` when training starts, or
``eval_config.json`` (plus ``--load-epoch``) for an evaluation-only run; atomically, so a
kill leaves the old record or the new one. Then:

* ``--resume`` into a folder whose record differs stops in one line naming the keys
  (``OPTIM.MAX_EPOCH`` may differ: a resume may extend a run);
* the sweeps (scripts/common.sh, through ``python3 -m tools.run_record``) reuse a finished
  run, or resume an interrupted one, only if its record matches what they would run.

Left out, because they change where things are or how fast they run, not the result:
the output folder, resume folder and data root (``--output-dir``, ``--resume``,
``--root``), ``EVAL_ONLY`` (the record's file name says it), data-loading workers,
logging and checkpoint frequencies, ``TEST.NO_TEST`` and ``USE_CUDA``/``VERBOSE``.
Keys only one of the two records has (another engine or version) are not compared.
"""
import json
import os

from yacs.config import CfgNode

from datasets.jsonio import read_json, write_json_atomic
from engine.user_errors import UserError

TRAIN_RECORD = "run_config.json"
EVAL_RECORD = "eval_config.json"
NOT_PART_OF_A_RUN = frozenset({
    "OUTPUT_DIR", "RESUME", "DATASET.ROOT", "EVAL_ONLY",
    "DATALOADER.NUM_WORKERS", "DATALOADER.PIN_MEMORY", "DATALOADER.PERSISTENT_WORKERS",
    "DATALOADER.PREFETCH_FACTOR",
    "TRAIN.PRINT_FREQ", "TRAIN.CHECKPOINT_FREQ", "TRAIN.CHECKPOINT_ITERS",
    "TEST.NO_TEST", "USE_CUDA", "VERBOSE",
})
MAY_CHANGE_ON_RESUME = frozenset({"OPTIM.MAX_EPOCH"})  # a resume may train more epochs
LOAD_EPOCH = "--load-epoch"  # an evaluation record's one key that is no config key


class RunConfigMismatch(UserError):
    """The output folder holds a run of another config."""


def record_path(output_dir, eval_only):
    return os.path.join(output_dir, EVAL_RECORD if eval_only else TRAIN_RECORD)


def run_definition(cfg, load_epoch=None, eval_only=False):
    """The flat {key: value} that defines a run of ``cfg`` (JSON values)."""
    definition = {key: value for key, value in _flatten(cfg)
                  if key not in NOT_PART_OF_A_RUN}
    if eval_only:
        definition[LOAD_EPOCH] = load_epoch
    return json.loads(json.dumps(definition))  # tuples become lists, as read back


def _flatten(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, CfgNode):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def read_record(output_dir, eval_only=False):
    """The recorded definition, or None without a (readable) record."""
    try:
        record = read_json(record_path(output_dir, eval_only))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_record(output_dir, definition, eval_only=False):
    write_json_atomic(record_path(output_dir, eval_only), definition, indent=1)


def differences(recorded, requested, ignored=()):
    """["KEY: <recorded> -> <requested>", ...] for the keys both have and that differ."""
    return [
        f"{key}: {_shown(recorded[key])} -> {_shown(value)}"
        for key, value in sorted(requested.items())
        if key in recorded and key not in ignored and recorded[key] != value
    ]


def _shown(value):
    return json.dumps(value) if not isinstance(value, str) else repr(value)


def record_run(cfg, load_epoch=None):
    """Check a resumed run's record against ``cfg`` (RunConfigMismatch naming the keys),
    then write the record of this run. Called by train.py (rank 0, under the folder's
    lock) before anything is trained or evaluated."""
    eval_only = bool(cfg.EVAL_ONLY)
    definition = run_definition(cfg, load_epoch, eval_only)
    if cfg.RESUME and not eval_only:
        recorded = read_record(cfg.RESUME)
        differing = differences(recorded or {}, definition, MAY_CHANGE_ON_RESUME)
        if differing:
            raise RunConfigMismatch(
                f"--resume {cfg.RESUME}: that run was started with another config "
                f"({'; '.join(differing)}); resume it with the config it was started with "
                f"(recorded in {record_path(cfg.RESUME, False)}), or pass --overwrite instead "
                "of --resume to move it aside and start afresh")
    write_record(cfg.OUTPUT_DIR, definition, eval_only)
