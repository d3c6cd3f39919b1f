"""What ``train.py`` does: CoOp's command line, the config pipeline and the run flow.

Same flags and order as CoOp/MaPLe's train.py (defaults -> our keys -> dataset YAML
-> trainer YAML -> flags -> trailing KEY VALUE opts), so their scripts carry over.
Differences users asked for: ``--seed 0`` is honoured, bad input ends in one
clear line and a non-zero exit instead of a traceback, and a training run never
silently reuses an output folder that holds a run: ``--resume`` (with no value: the
output folder itself) continues it, ``--overwrite`` moves it aside first. One run at a
time holds an output folder (``engine.output_lock``), and each records what defines it
there (``engine.run_record``).

Under ``torchrun`` (WORLD_SIZE > 1) the same flow runs in every process after joining
the process group (``engine.distributed``); rank 0 alone checks the output folder,
logs and prints (docs/distributed.md).
"""
import argparse
import os
import os.path as osp
import re
import sys
import time

import torch

from engine import distributed
from engine import (
    BACKEND, DATASET_REGISTRY, TRAINER_REGISTRY, build_trainer, collect_env_info,
    get_cfg_default, set_random_seed, setup_logger,
)
from engine.bundled.registry import closest_match
from engine.checkpoint_files import run_checkpoint_files
from engine.config_checks import check_config_values
from engine.config_errors import ConfigError, merge_config_file, merge_config_list
from engine.config_extension import extend_cfg
from engine.output_lock import OutputDirLock
from engine.run_record import record_run
from engine.stale_temp_files import remove_stale_temp_files
from engine.user_errors import UserError, is_user_error


def build_arg_parser():
    parser = argparse.ArgumentParser(description="Train or evaluate a CLIP prompt learner.")
    parser.add_argument("--root", type=str, default="", help="path to dataset")
    parser.add_argument("--output-dir", type=str, default="", help="output directory")
    parser.add_argument("--resume", type=str, nargs="?", default="", const=RESUME_OUTPUT_DIR,
                        help="resume training from the last checkpoint in this directory "
                             "(no value: the output directory)")
    parser.add_argument("--overwrite", action="store_true",
                        help="if the output directory holds a previous run, move it aside "
                             "(to <output-dir>.old-<time>) and start afresh")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed (0 is a seed like any other; negative means none)")
    parser.add_argument("--source-domains", type=str, nargs="+", help="source domains for DA/DG")
    parser.add_argument("--target-domains", type=str, nargs="+", help="target domains for DA/DG")
    parser.add_argument("--transforms", type=str, nargs="+", help="data augmentation methods")
    parser.add_argument("--config-file", type=str, default="", help="path to config file")
    parser.add_argument("--dataset-config-file", type=str, default="",
                        help="path to config file for dataset setup")
    parser.add_argument("--trainer", type=str, default="", help="name of trainer")
    parser.add_argument("--backbone", type=str, default="", help="name of CNN backbone")
    parser.add_argument("--head", type=str, default="", help="name of head")
    parser.add_argument("--eval-only", action="store_true", help="evaluation only")
    parser.add_argument("--model-dir", type=str, default="",
                        help="load model from this directory for eval-only mode")
    parser.add_argument("--load-epoch", type=int, help="load model weights at this epoch for evaluation")
    parser.add_argument("--no-train", action="store_true", help="do not call trainer.train()")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER,
                        help="modify config options using the command-line")
    return parser


RESUME_OUTPUT_DIR = "<output-dir>"  # what a bare ``--resume`` stands for
_CONFIG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")


def parse_args(argv=None):
    """Parse train.py's command line; a bare ``--resume`` before KEY VALUE opts works too."""
    args = build_arg_parser().parse_args(argv)
    # argparse gives ``--resume OPTIM.LR 0.1`` the key as the directory: hand it back.
    if args.resume and _CONFIG_KEY.match(args.resume) and not osp.exists(args.resume):
        args.opts = [args.resume, *(args.opts or [])]
        args.resume = RESUME_OUTPUT_DIR
    # "the same command with --resume" usually means appended after the KEY VALUE opts,
    # which argparse leaves in opts: take --resume [DIR] and --overwrite out of them.
    opts, rest = [], list(args.opts or [])
    while rest:
        item = rest.pop(0)
        if item == "--overwrite":
            args.overwrite = True
        elif item == "--resume":
            takes_dir = rest and not rest[0].startswith("--") and not _CONFIG_KEY.match(rest[0])
            args.resume = rest.pop(0) if takes_dir else RESUME_OUTPUT_DIR
        else:
            opts.append(item)
    args.opts = opts
    return args


def reset_cfg(cfg, args):
    if args.root:
        cfg.DATASET.ROOT = args.root
    if args.output_dir:
        cfg.OUTPUT_DIR = args.output_dir
    if args.resume:
        cfg.RESUME = args.resume
    if args.eval_only:
        cfg.EVAL_ONLY = True
    if args.seed is not None:
        cfg.SEED = args.seed
    if args.source_domains:
        cfg.DATASET.SOURCE_DOMAINS = args.source_domains
    if args.target_domains:
        cfg.DATASET.TARGET_DOMAINS = args.target_domains
    if args.transforms:
        cfg.INPUT.TRANSFORMS = args.transforms
    if args.trainer:
        cfg.TRAINER.NAME = args.trainer
    if args.backbone:
        cfg.MODEL.BACKBONE.NAME = args.backbone
    if args.head:
        cfg.MODEL.HEAD.NAME = args.head


def setup_cfg(args):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    if args.dataset_config_file:
        merge_config_file(cfg, args.dataset_config_file)
    if args.config_file:
        merge_config_file(cfg, args.config_file)
    reset_cfg(cfg, args)
    merge_config_list(cfg, args.opts or [])
    if cfg.RESUME == RESUME_OUTPUT_DIR:  # after the opts, which may set OUTPUT_DIR
        cfg.RESUME = cfg.OUTPUT_DIR
    check_names(cfg)
    check_config_values(cfg)
    cfg.freeze()
    return cfg


def check_names(cfg):
    """Fail early, in one line, on a trainer or dataset name nobody registered."""
    for kind, name, registry in (
        ("trainer", cfg.TRAINER.NAME, TRAINER_REGISTRY),
        ("dataset", cfg.DATASET.NAME, DATASET_REGISTRY),
    ):
        names = sorted(registry.registered_names())
        if name not in names:
            hint = closest_match(name, names) if name else None
            did_you_mean = f" Did you mean {hint}?" if hint else ""
            raise ConfigError(
                f"Unknown {kind} {name!r}.{did_you_mean} Registered {kind}s: {', '.join(names)}"
            )


class OutputDirInUse(UserError):
    """The output folder holds a previous run and neither resume nor overwrite was asked."""


def previous_run(output_dir):
    """A short description of the run ``output_dir`` holds, or None if it holds none.

    A run is a log saying "Finish training" or any checkpoint
    (``engine.checkpoint_files``: the definition ``--resume`` and the sweeps use too).
    """
    if not osp.isdir(output_dir):
        return None
    finished = False
    for entry in sorted(os.listdir(output_dir)):
        path = osp.join(output_dir, entry)
        if entry.startswith("log.txt") and osp.isfile(path):
            try:
                with open(path, errors="replace") as f:
                    finished = finished or "Finish training" in f.read()
            except OSError:
                pass
    checkpoints = run_checkpoint_files(output_dir)
    if finished:
        return "a finished run (its log says \"Finish training\")"
    if checkpoints:
        return f"checkpoints of an unfinished run ({', '.join(checkpoints[:3])}" + (
            ", ...)" if len(checkpoints) > 3 else ")")
    return None


def check_output_dir(cfg, args):
    """Refuse to train into a folder holding a run unless resuming or overwriting.

    Returns a note to print once the logger is set up (or None). ``--overwrite`` renames
    the old folder to ``<output-dir>.old-<YYYYmmdd-HHMMSS>`` (nothing is deleted).
    """
    if cfg.EVAL_ONLY or args.no_train:
        return None  # evaluation only adds a new log file next to the old ones
    if args.overwrite and cfg.RESUME:
        raise OutputDirInUse("--overwrite and --resume (or RESUME) contradict each other; pass one")
    output_dir = osp.normpath(cfg.OUTPUT_DIR)
    found = previous_run(output_dir)
    if found is None or cfg.RESUME:
        return None
    if not args.overwrite:
        raise OutputDirInUse(
            f"Output directory {cfg.OUTPUT_DIR} already holds {found}. Pass --resume to "
            "continue it from its last checkpoint, --overwrite to move it aside "
            f"(to {output_dir}.old-<time>) and start afresh, or choose another --output-dir"
        )
    moved_to = f"{output_dir}.old-{time.strftime('%Y%m%d-%H%M%S')}"
    suffix = 1
    while osp.exists(moved_to):
        moved_to = f"{output_dir}.old-{time.strftime('%Y%m%d-%H%M%S')}-{suffix}"
        suffix += 1
    os.replace(output_dir, moved_to)
    return f"--overwrite: moved the previous run in {output_dir} ({found}) to {moved_to}"


def print_args(args, cfg):
    print("***************")
    print("** Arguments **")
    print("***************")
    for key in sorted(args.__dict__):
        print(f"{key}: {args.__dict__[key]}")
    print("************")
    print("** Config **")
    print("************")
    print(cfg)


def claim_output_dir(cfg, args, lock):
    """Lock the output folder (rank 0), check what it holds (``check_output_dir``) and
    record what defines this run there (``engine.run_record``; a resume of a run with
    another config stops here).

    The check runs under the lock, so two runs started together cannot both pass it. An
    ``--overwrite`` that moved the old run aside locks the fresh folder in its place.
    """
    lock.acquire()
    note = check_output_dir(cfg, args)
    if note is not None:  # the locked folder was moved aside with the old run
        lock.release()
        lock.acquire()
    if not args.no_train or cfg.EVAL_ONLY:
        record_run(cfg, args.load_epoch)  # what defines this run (engine.run_record)
    return note


def run(args):
    cfg = setup_cfg(args)
    distributed.init_from_env(cfg.USE_CUDA, backend_name=BACKEND)
    lock = OutputDirLock(cfg.OUTPUT_DIR)  # held by rank 0 until the run ends
    try:
        return run_locked(cfg, args, lock)
    finally:
        lock.release()


def run_locked(cfg, args, lock):
    overwrite_note = on_main_process_first(claim_output_dir, cfg, args, lock)
    if cfg.SEED >= 0:
        # The same seed on every rank: the few-shot subset (drawn while the dataset is
        # built) and the prompt initialisation are then identical on all of them.
        print(f"Setting fixed seed: {cfg.SEED}")
        set_random_seed(cfg.SEED)
    if distributed.is_main_process():
        setup_logger(cfg.OUTPUT_DIR)
        remove_stale_temp_files(cfg.OUTPUT_DIR, depth=1)  # checkpoint temps of a killed run
    else:  # one log and one console stream per run: rank 0's
        silence_stdout()
    if distributed.is_distributed():
        print(f"Distributed run: {distributed.get_world_size()} processes "
              f"({torch.distributed.get_backend()} backend)")
    if overwrite_note:
        print(overwrite_note)
    if torch.cuda.is_available() and cfg.USE_CUDA:
        torch.backends.cudnn.benchmark = True

    print_args(args, cfg)
    print(f"Engine backend: {BACKEND}")
    print("Collecting env info ...")
    print(f"** System info **\n{collect_env_info()}\n")

    trainer = build_trainer(cfg)
    if distributed.is_distributed() and cfg.SEED >= 0:
        # From here on each rank draws its own augmentations (and sampled classes);
        # the data split and the initial prompts above came from the shared seed.
        set_random_seed(cfg.SEED + distributed.get_rank())
    if cfg.EVAL_ONLY:
        trainer.load_model(args.model_dir, epoch=args.load_epoch)
        trainer.test()
        return trainer
    if not args.no_train:
        trainer.train()
    return trainer


def on_main_process_first(fn, *args):
    """``fn(*args)`` on rank 0 only (it may move folders); its result or its user error
    reaches every rank, so all of them go on or all stop with the same message."""
    outcome = None
    if distributed.is_main_process():
        try:
            outcome = ("ok", fn(*args))
        except Exception as error:  # noqa: BLE001  (re-raised below, on every rank)
            if not is_user_error(error) or not distributed.is_distributed():
                raise
            outcome = ("error", error)
    kind, value = distributed.broadcast_from_main(outcome)
    if kind == "error":
        raise value
    return value


def silence_stdout():
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (lives as long as the process)


def one_line(error):
    """A user error's message as one line (a DataLoader worker wraps it in a traceback)."""
    text = str(error)
    if "Original Traceback" in text:  # re-raised from a worker: keep the original message
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        text = re.sub(r"^[\w.]+: ", "", last.strip())
    return " ".join(text.split())


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args)
    except Exception as error:  # noqa: BLE001  (only user errors are shortened)
        if not is_user_error(error):
            raise
        if distributed.is_main_process():  # the same error on every rank: say it once
            print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    finally:
        distributed.shutdown()
    return 0


__all__ = [
    "build_arg_parser", "parse_args", "setup_cfg", "reset_cfg", "check_output_dir",
    "previous_run", "OutputDirInUse", "run", "main", "UserError",
]
