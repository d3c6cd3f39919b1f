"""Runtime fixes that let unmodified Dassl 0.6.3 (c61a1b5) run on current PyTorch, and
give it our DATALOADER keys (CORRUPT_IMAGE, PIN_MEMORY, PERSISTENT_WORKERS, PREFETCH_FACTOR).

``engine/__init__.py`` calls :func:`apply_dassl_compat` before importing anything else
from Dassl. Each patch replaces one attribute of a Dassl class or module; no file is
edited and ``torch.load`` keeps its safe ``weights_only=True`` default.
"""
import torch
from torch.optim.lr_scheduler import LRScheduler

_MARK = "_rpp_dassl_compat"
_ORIGINALS = {}  # Dassl's own functions that the data patches wrap


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


# DATALOADER.CORRUPT_IMAGE on Dassl. Dassl 0.6.3's read_image lets PIL's error escape
# from the DataLoader as a traceback that train.py cannot shorten; earlier releases (still
# bundled by some prompt-learning repos) retry an unreadable file forever. Both reach it
# as ``dassl.data.data_manager.read_image``, the name replaced here. The bundled engine's
# reader, item wrapper and loader are reused, so both engines fail or skip in the same
# words. They are imported when called: this module runs while ``engine`` itself is
# still being imported.


def _read_image(path):
    """Dassl's read_image, failing with CorruptImageError (one line naming the file)."""
    from engine.bundled.data.data_manager import read_image

    return read_image(path)


def _dataset_wrapper_getitem(self, idx):
    from engine.bundled.data.data_manager import (
        CorruptImageError, SkippedImage, corrupt_image_policy,
    )

    try:
        return _ORIGINALS["getitem"](self, idx)
    except CorruptImageError as exc:
        if corrupt_image_policy(self.cfg) != "skip":
            raise
        return SkippedImage(self.data_source[idx].impath, str(exc))


def _build_data_loader(cfg, *args, **kwargs):
    """Dassl's loader, rebuilt with the bundled engine's worker options, and under
    CORRUPT_IMAGE "skip" as the loader that drops and counts unreadable images (Dassl's
    default collate cannot batch the skipped markers)."""
    from engine.bundled.data.data_manager import (
        SkipCountingDataLoader, collate_skipping_corrupt, corrupt_image_policy,
    )
    from engine.bundled.data.loader_options import loader_worker_options

    policy = corrupt_image_policy(cfg)  # an unknown policy fails before any data is read
    loader = _ORIGINALS["build_data_loader"](cfg, *args, **kwargs)
    # Dassl's loader reads only NUM_WORKERS, so PIN_MEMORY, PERSISTENT_WORKERS and
    # PREFETCH_FACTOR would be ignored. Keep what Dassl chose (dataset, sampler, batch
    # size, drop_last, ...) and take the worker options from the same function as the
    # bundled engine; a DataLoader is cheap to build, nothing has been loaded yet.
    kept = {
        "batch_size": loader.batch_size, "sampler": loader.sampler,
        "drop_last": loader.drop_last, "collate_fn": loader.collate_fn,
        "worker_init_fn": loader.worker_init_fn, "generator": loader.generator,
        "timeout": loader.timeout,
    }
    loader_class = torch.utils.data.DataLoader
    if policy == "skip":
        loader_class, kept["collate_fn"] = SkipCountingDataLoader, collate_skipping_corrupt
    return loader_class(loader.dataset, **kept, **loader_worker_options(cfg))


def apply_dassl_compat():
    """Patch Dassl in place; calling it again does nothing."""
    import dassl.data.data_manager as dassl_data
    from dassl.optim.lr_scheduler import _BaseWarmupScheduler

    if getattr(_BaseWarmupScheduler, _MARK, False):
        return
    _BaseWarmupScheduler.__init__ = _warmup_init
    _BaseWarmupScheduler.state_dict = _warmup_state_dict
    _BaseWarmupScheduler.load_state_dict = _warmup_load_state_dict

    # DataManager and DatasetWrapper look these names up in their module at call time.
    _ORIGINALS["getitem"] = dassl_data.DatasetWrapper.__getitem__
    _ORIGINALS["build_data_loader"] = dassl_data.build_data_loader
    dassl_data.read_image = _read_image
    dassl_data.build_data_loader = _build_data_loader
    dassl_data.DatasetWrapper.__getitem__ = _dataset_wrapper_getitem
    setattr(_BaseWarmupScheduler, _MARK, True)
