"""What ``train.py`` does: CoOp's command line, the config pipeline and the run flow.

Same flags and order as CoOp/MaPLe's train.py (defaults -> our keys -> dataset YAML
-> trainer YAML -> flags -> trailing KEY VALUE opts), so their scripts carry over.
Differences users asked for: ``--seed 0`` is honoured, and bad input ends in one
clear line and a non-zero exit instead of a traceback.
"""
import argparse
import sys

import torch

from engine import (
    BACKEND, DATASET_REGISTRY, TRAINER_REGISTRY, build_trainer, collect_env_info,
    get_cfg_default, set_random_seed, setup_logger,
)
from engine.bundled.registry import closest_match
from engine.config_errors import ConfigError, merge_config_file, merge_config_list
from engine.config_extension import extend_cfg
from engine.user_errors import UserError, is_user_error


def build_arg_parser():
    parser = argparse.ArgumentParser(description="Train or evaluate a CLIP prompt learner.")
    parser.add_argument("--root", type=str, default="", help="path to dataset")
    parser.add_argument("--output-dir", type=str, default="", help="output directory")
    parser.add_argument("--resume", type=str, default="",
                        help="checkpoint directory (from which the training resumes)")
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


def reset_cfg(cfg, args):
    if args.root:
        cfg.DATASET.ROOT = args.root
    if args.output_dir:
        cfg.OUTPUT_DIR = args.output_dir
    if args.resume:
        cfg.RESUME = args.resume
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
    check_names(cfg)
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


def run(args):
    cfg = setup_cfg(args)
    if cfg.SEED >= 0:
        print(f"Setting fixed seed: {cfg.SEED}")
        set_random_seed(cfg.SEED)
    setup_logger(cfg.OUTPUT_DIR)
    if torch.cuda.is_available() and cfg.USE_CUDA:
        torch.backends.cudnn.benchmark = True

    print_args(args, cfg)
    print(f"Engine backend: {BACKEND}")
    print("Collecting env info ...")
    print(f"** System info **\n{collect_env_info()}\n")

    trainer = build_trainer(cfg)
    if args.eval_only:
        trainer.load_model(args.model_dir, epoch=args.load_epoch)
        trainer.test()
        return trainer
    if not args.no_train:
        trainer.train()
    return trainer


def main(argv=None):
    args = build_arg_parser().parse_args(argv)
    try:
        run(args)
    except Exception as error:  # noqa: BLE001  (only user errors are shortened)
        if not is_user_error(error):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


__all__ = ["build_arg_parser", "setup_cfg", "reset_cfg", "run", "main", "UserError"]
