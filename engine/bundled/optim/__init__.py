"""Optimizers and LR schedulers built from ``cfg.OPTIM`` (Dassl's ``dassl.optim``)."""
from .lr_scheduler import (
    AVAILABLE_LR_SCHEDULERS, ConstantWarmupScheduler, LinearWarmupScheduler,
    build_lr_scheduler,
)
from .optimizer import AVAILABLE_OPTIMIZERS, build_optimizer
from .radam import RAdam

__all__ = [
    "build_optimizer", "build_lr_scheduler", "AVAILABLE_OPTIMIZERS",
    "AVAILABLE_LR_SCHEDULERS", "ConstantWarmupScheduler", "LinearWarmupScheduler",
    "RAdam",
]
