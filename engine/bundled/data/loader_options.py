"""DataLoader worker settings from the config, so loading keeps up with the model.

Dassl has DATALOADER.NUM_WORKERS; we add

* DATALOADER.PIN_MEMORY (default True): page-locked batches for faster, asynchronous
  host-to-GPU copies. Only takes effect when the run uses CUDA.
* DATALOADER.PERSISTENT_WORKERS (default False): keep the worker processes between
  epochs instead of starting NUM_WORKERS new ones per epoch (worth it when few-shot
  epochs are a handful of batches and start-up dominates). Off by default because
  persistent workers carry their augmentation RNG across epochs, so a run resumed from
  a checkpoint would no longer repeat the uninterrupted one bit for bit.
* DATALOADER.PREFETCH_FACTOR (default 2, torch's default): batches each worker
  prepares ahead.

NUM_WORKERS above the CPU cores this process may use (the recipes ask for 8) is lowered
to that count, with one line saying so, instead of torch's multi-line warning at every
loader start: more workers than cores only compete for them.
"""
import os

import torch

from engine.config_extension import config_extension


@config_extension
def _loader_keys(cfg):
    cfg.DATALOADER.PIN_MEMORY = True
    cfg.DATALOADER.PERSISTENT_WORKERS = False
    cfg.DATALOADER.PREFETCH_FACTOR = 2


def uses_cuda(cfg):
    return bool(cfg.USE_CUDA) and torch.cuda.is_available()


def available_cpus():
    """CPU cores this process may run on: its affinity mask, as torch's worker check counts."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


_LOWERED = set()  # (asked, available) pairs already reported by this process


def worker_count(requested, available=None):
    """``requested`` loader workers, at most ``available`` (default: this process's cores)."""
    requested = int(requested)
    available = available_cpus() if available is None else int(available)
    if requested <= available:
        return requested
    if (requested, available) not in _LOWERED:
        _LOWERED.add((requested, available))
        print(f"DATALOADER.NUM_WORKERS {requested} lowered to {available}: "
              f"this process may use {available} CPU core{'s' if available != 1 else ''}")
    return available


def loader_worker_options(cfg):
    """DataLoader keyword arguments for workers, pinning and prefetching."""
    loader_cfg = cfg.DATALOADER
    num_workers = worker_count(loader_cfg.NUM_WORKERS)
    options = {
        "num_workers": num_workers,
        "pin_memory": bool(loader_cfg.get("PIN_MEMORY", True)) and uses_cuda(cfg),
    }
    if num_workers > 0:  # torch rejects both options without worker processes
        options["persistent_workers"] = bool(loader_cfg.get("PERSISTENT_WORKERS", False))
        options["prefetch_factor"] = int(loader_cfg.get("PREFETCH_FACTOR", 2))
    return options
