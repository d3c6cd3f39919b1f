"""Runtime fixes that let unmodified Dassl 0.6.3 (c61a1b5) run on current PyTorch.

``engine/__init__.py`` calls :func:`apply_dassl_compat` before importing anything else
from Dassl. Each patch replaces one attribute of a Dassl class; no file is edited and
``torch.load`` keeps its safe ``weights_only=True`` default.
"""
from torch.optim.lr_scheduler import LRScheduler

_MARK = "_rpp_dassl_compat"


def _warmup_init(self, optimizer, successor, warmup_epoch, last_epoch=-1, verbose=False):
    # torch >= 2.7 removed LRScheduler's ``verbose`` argument, which Dassl passes
    # positionally (TypeError at trainer construction). Accept it and drop it.
    self.successor = successor
    self.warmup_epoch = warmup_epoch
    LRScheduler.__init__(self, optimizer, last_epoch)


def _warmup_state_dict(self):
    # torch's default state_dict is __dict__ minus the optimizer, so it would pickle
    # the successor *object*, which weights_only loading rejects. Store its state.
    state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "successor")}
    state["successor"] = self.successor.state_dict()
    return state


def _warmup_load_state_dict(self, state_dict):
    # Restore into the live successor, which stays bound to the live optimizer, so the
    # LR keeps following the schedule after a resume (Dassl's own load replaced the
    # successor with an unpickled copy bound to a copied optimizer: the LR froze).
    state = dict(state_dict)
    successor = state.pop("successor", None)
    self.__dict__.update(state)
    if isinstance(successor, LRScheduler):  # a checkpoint written by unpatched Dassl
        successor = successor.state_dict()
    if successor is not None:
        self.successor.load_state_dict(successor)


def apply_dassl_compat():
    """Patch Dassl in place; calling it again does nothing."""
    from dassl.optim.lr_scheduler import _BaseWarmupScheduler

    if getattr(_BaseWarmupScheduler, _MARK, False):
        return
    _BaseWarmupScheduler.__init__ = _warmup_init
    _BaseWarmupScheduler.state_dict = _warmup_state_dict
    _BaseWarmupScheduler.load_state_dict = _warmup_load_state_dict
    setattr(_BaseWarmupScheduler, _MARK, True)
