"""``build_lr_scheduler``: Dassl's LR schedules, stepped once per epoch.

The warmup wrappers reproduce Dassl's LR-per-epoch tables exactly, but unlike
Dassl's they (1) run on torch >= 2.7 (no ``verbose`` argument) and (2) save the
wrapped successor as its own ``state_dict()`` (plain data) instead of a pickled
scheduler object. That keeps checkpoints loadable with
``torch.load(weights_only=True)`` and, because the live successor is restored in
place, the LR keeps following the schedule after a resume.
"""
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, MultiStepLR, StepLR

from engine.config_errors import ConfigError

AVAILABLE_LR_SCHEDULERS = ["single_step", "multi_step", "cosine"]
AVAILABLE_WARMUP_TYPES = ["constant", "linear"]


class _WarmupScheduler(LRScheduler):
    """Runs its own schedule for ``warmup_epoch`` steps, then hands over to ``successor``."""

    def __init__(self, optimizer, successor, warmup_epoch, last_epoch=-1):
        self.successor = successor
        self.warmup_epoch = warmup_epoch
        super().__init__(optimizer, last_epoch)

    def warmup_lr(self):
        raise NotImplementedError

    def get_lr(self):
        if self.last_epoch >= self.warmup_epoch:
            return self.successor.get_last_lr()
        return self.warmup_lr()

    def step(self, epoch=None):
        if self.last_epoch >= self.warmup_epoch:
            # After warmup only the successor advances; our own counter stays put.
            self.successor.step(epoch)
            self._last_lr = self.successor.get_last_lr()
        else:
            super().step(epoch)

    def state_dict(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "successor")}
        state["successor"] = self.successor.state_dict()
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        successor_state = state.pop("successor")
        self.__dict__.update(state)
        self.successor.load_state_dict(successor_state)


class ConstantWarmupScheduler(_WarmupScheduler):
    """``cons_lr`` for every group during warmup."""

    def __init__(self, optimizer, successor, warmup_epoch, cons_lr, last_epoch=-1):
        self.cons_lr = cons_lr
        super().__init__(optimizer, successor, warmup_epoch, last_epoch)

    def warmup_lr(self):
        return [self.cons_lr for _ in self.base_lrs]


class LinearWarmupScheduler(_WarmupScheduler):
    """``min_lr`` at epoch 0, then ``base_lr * epoch / warmup_epoch``."""

    def __init__(self, optimizer, successor, warmup_epoch, min_lr, last_epoch=-1):
        self.min_lr = min_lr
        super().__init__(optimizer, successor, warmup_epoch, last_epoch)

    def warmup_lr(self):
        if self.last_epoch == 0:
            return [self.min_lr for _ in self.base_lrs]
        return [lr * self.last_epoch / self.warmup_epoch for lr in self.base_lrs]


def build_lr_scheduler(optimizer, optim_cfg):
    """The scheduler named by ``optim_cfg.LR_SCHEDULER``, wrapped for warmup if asked."""
    scheduler = _build_main_scheduler(optimizer, optim_cfg)
    if optim_cfg.WARMUP_EPOCH > 0:
        scheduler = _wrap_with_warmup(optimizer, scheduler, optim_cfg)
    return scheduler


def _build_main_scheduler(optimizer, c):
    name = c.LR_SCHEDULER
    if name not in AVAILABLE_LR_SCHEDULERS:
        raise ConfigError(f"OPTIM.LR_SCHEDULER must be one of {AVAILABLE_LR_SCHEDULERS}, but got {name!r}")
    stepsize = c.STEPSIZE
    if name == "single_step":
        if isinstance(stepsize, (list, tuple)):
            stepsize = stepsize[-1]
        if not isinstance(stepsize, int):
            raise ConfigError(
                f"OPTIM.STEPSIZE for single_step must be an int, got {type(stepsize).__name__}"
            )
        if stepsize <= 0:
            stepsize = c.MAX_EPOCH  # -1 means "decay once, after the last epoch"
        return StepLR(optimizer, step_size=stepsize, gamma=c.GAMMA)
    if name == "multi_step":
        if not isinstance(stepsize, (list, tuple)):
            raise ConfigError(
                f"OPTIM.STEPSIZE for multi_step must be a list or tuple, got {type(stepsize).__name__}"
            )
        return MultiStepLR(optimizer, milestones=list(stepsize), gamma=c.GAMMA)
    # The cosine period is MAX_EPOCH even with warmup, as in Dassl.
    return CosineAnnealingLR(optimizer, T_max=float(c.MAX_EPOCH))


def _wrap_with_warmup(optimizer, successor, c):
    if not c.WARMUP_RECOUNT:
        # Dassl's quirk: the successor starts as if warmup epochs were already spent.
        successor.last_epoch = c.WARMUP_EPOCH
    if c.WARMUP_TYPE == "constant":
        return ConstantWarmupScheduler(optimizer, successor, c.WARMUP_EPOCH, c.WARMUP_CONS_LR)
    if c.WARMUP_TYPE == "linear":
        return LinearWarmupScheduler(optimizer, successor, c.WARMUP_EPOCH, c.WARMUP_MIN_LR)
    raise ConfigError(f"OPTIM.WARMUP_TYPE must be one of {AVAILABLE_WARMUP_TYPES}, but got {c.WARMUP_TYPE!r}")
