"""The Dassl API our trainers and datasets are written against.

Every name comes from a real Dassl install when ``import dassl`` works (so our
trainers and datasets register into a user's existing Dassl), otherwise from our
bundled engine. ``RPP_ENGINE=bundled|dassl|auto`` forces the choice.
"""
import importlib.util
import os

ENGINE_ENV_VAR = "RPP_ENGINE"
_CHOICES = ("auto", "bundled", "dassl")


def dassl_is_installed():
    return importlib.util.find_spec("dassl") is not None


def select_backend(requested=None, dassl_available=None):
    """Return "dassl" or "bundled" for the requested mode (default: the env var)."""
    if requested is None:
        requested = os.environ.get(ENGINE_ENV_VAR, "auto")
    requested = (requested or "auto").strip().lower()
    if requested not in _CHOICES:
        raise ValueError(f"{ENGINE_ENV_VAR}={requested!r} is not one of {', '.join(_CHOICES)}")
    if dassl_available is None:
        dassl_available = dassl_is_installed()
    if requested == "bundled":
        return "bundled"
    if requested == "dassl":
        if not dassl_available:
            raise ImportError(
                f"{ENGINE_ENV_VAR}=dassl but 'import dassl' fails. Install Dassl.pytorch "
                "(pip install --no-build-isolation -e Dassl.pytorch) or unset the variable."
            )
        return "dassl"
    return "dassl" if dassl_available else "bundled"


BACKEND = select_backend()

if BACKEND == "dassl":
    from engine.dassl_compat import apply_dassl_compat

    apply_dassl_compat()
    from dassl.config import get_cfg_default
    from dassl.data import DataManager, DatasetWrapper
    from dassl.data.datasets import DATASET_REGISTRY, DatasetBase, Datum, build_dataset
    from dassl.data.transforms import build_transform
    from dassl.engine import TRAINER_REGISTRY, SimpleTrainer, TrainerBase, TrainerX, build_trainer
    from dassl.evaluation import EVALUATOR_REGISTRY, build_evaluator
    from dassl.metrics import compute_accuracy
    from dassl.optim import build_lr_scheduler, build_optimizer
    from dassl.utils import (
        AverageMeter, MetricMeter, check_isfile, collect_env_info, count_num_param,
        listdir_nohidden, load_checkpoint, load_pretrained_weights, mkdir_if_missing,
        read_json, resume_from_checkpoint, save_checkpoint, set_random_seed, setup_logger,
        write_json,
    )
else:
    from engine.bundled.config import get_cfg_default
    from engine.bundled.data import DataManager, DatasetBase, DatasetWrapper, Datum, build_dataset
    from engine.bundled.data.transforms import build_transform
    from engine.bundled.evaluation import build_evaluator
    from engine.bundled.metrics import compute_accuracy
    from engine.bundled.optim import build_lr_scheduler, build_optimizer
    from engine.bundled.registry import DATASET_REGISTRY, EVALUATOR_REGISTRY, TRAINER_REGISTRY
    from engine.bundled.trainer import SimpleTrainer, TrainerBase, TrainerX, build_trainer
    from engine.bundled.utils import (
        AverageMeter, MetricMeter, check_isfile, collect_env_info, count_num_param,
        listdir_nohidden, load_checkpoint, load_pretrained_weights, mkdir_if_missing,
        read_json, resume_from_checkpoint, save_checkpoint, set_random_seed, setup_logger,
        write_json,
    )

__all__ = [
    "BACKEND", "ENGINE_ENV_VAR", "select_backend", "dassl_is_installed",
    "get_cfg_default", "DataManager", "DatasetWrapper", "DATASET_REGISTRY", "DatasetBase",
    "Datum", "build_dataset", "build_transform", "TRAINER_REGISTRY", "SimpleTrainer",
    "TrainerBase", "TrainerX", "build_trainer", "EVALUATOR_REGISTRY", "build_evaluator",
    "compute_accuracy", "build_lr_scheduler", "build_optimizer", "AverageMeter", "MetricMeter",
    "check_isfile", "collect_env_info", "count_num_param", "listdir_nohidden",
    "load_checkpoint", "load_pretrained_weights", "mkdir_if_missing", "read_json",
    "resume_from_checkpoint", "save_checkpoint", "set_random_seed", "setup_logger", "write_json",
]
