"""Helpers with Dassl's ``dassl.utils`` names (logging, seeding, files, meters, checkpoints)."""
from .checkpoint import (
    CheckpointError, load_checkpoint, load_pretrained_weights, resume_from_checkpoint,
    save_checkpoint,
)
from .environment import collect_env_info, set_random_seed
from .logger import Logger, setup_logger
from .meters import AverageMeter, MetricMeter
from .tools import (
    check_isfile, count_num_param, listdir_nohidden, mkdir_if_missing, read_image, read_json,
    write_json,
)

__all__ = [
    "CheckpointError", "load_checkpoint", "load_pretrained_weights", "resume_from_checkpoint",
    "save_checkpoint", "collect_env_info", "set_random_seed", "Logger", "setup_logger",
    "AverageMeter", "MetricMeter", "check_isfile", "count_num_param", "listdir_nohidden",
    "mkdir_if_missing", "read_image", "read_json", "write_json",
]
