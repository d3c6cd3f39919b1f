"""Multi-process (torchrun) training and evaluation: process group, ranks, gathering.

``torchrun`` starts one process per device and sets WORLD_SIZE / RANK / LOCAL_RANK
(and MASTER_ADDR / MASTER_PORT); ``init_from_env`` joins the process group with NCCL
on CUDA and Gloo on the CPU. Without those variables (or with WORLD_SIZE 1) every
helper here behaves as a single process would, so callers need no branches.

Evaluation shards the test set by index (``i::world_size``, no padding, so no image
is seen twice) and ``gather_predictions`` brings every rank's (index, prediction, label)
together once, in index order, on every rank: all ranks then compute the same metrics.
"""
import inspect
import os
from datetime import timedelta

import torch
import torch.distributed as dist

from engine.user_errors import UserError

INIT_TIMEOUT = timedelta(minutes=30)  # a slow rank (dataset indexing) must not time out


class DistributedSetupError(UserError):
    """The process group for a torchrun launch could not be set up."""


def env_world_size():
    """WORLD_SIZE as torchrun set it (1 when not launched by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def is_distributed():
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank():
    return dist.get_rank() if is_distributed() else 0


def get_world_size():
    return dist.get_world_size() if is_distributed() else 1


def get_local_rank():
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def is_main_process():
    """Rank 0, or (before the process group exists) the process torchrun gave RANK 0."""
    if is_distributed():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0") or 0) == 0


def barrier():
    if is_distributed():
        dist.barrier()


def init_from_env(use_cuda, backend_name="bundled"):
    """Join the torchrun process group when WORLD_SIZE > 1; returns True if it did.

    On CUDA the process is bound to cuda:LOCAL_RANK before NCCL starts, so a plain
    ``torch.device("cuda")`` later means this process's own GPU.
    """
    world_size = env_world_size()
    if world_size <= 1 or is_distributed():
        return is_distributed()
    if backend_name != "bundled":
        raise DistributedSetupError(
            f"Multi-process training (WORLD_SIZE={world_size}) needs the bundled engine; the "
            f"{backend_name} backend does not shard data or gather predictions. Run with "
            "RPP_ENGINE=bundled"
        )
    if not dist.is_available():
        raise DistributedSetupError(
            f"WORLD_SIZE={world_size} but this PyTorch build has no torch.distributed"
        )
    on_cuda = use_cuda and torch.cuda.is_available()
    backend = "nccl" if on_cuda else "gloo"
    if on_cuda:
        local_rank = get_local_rank()
        if local_rank >= torch.cuda.device_count():
            raise DistributedSetupError(
                f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} GPU(s) are "
                "visible; start at most that many processes per node (--nproc_per_node)"
            )
        torch.cuda.set_device(local_rank)
    try:
        dist.init_process_group(backend=backend, timeout=INIT_TIMEOUT)
    except Exception as error:  # noqa: BLE001  (any failure becomes one clear line)
        raise DistributedSetupError(
            f"Cannot start the {backend} process group for WORLD_SIZE={world_size} "
            f"(RANK={os.environ.get('RANK')}, MASTER_ADDR={os.environ.get('MASTER_ADDR')}, "
            f"MASTER_PORT={os.environ.get('MASTER_PORT')}): {' '.join(str(error).split())}. "
            "Launch with torchrun (see docs/distributed.md)"
        ) from error
    return True


def shutdown():
    if is_distributed():
        dist.destroy_process_group()


def broadcast_from_main(obj):
    """Rank 0's ``obj`` on every rank (any picklable object)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_objects(obj):
    """[obj of rank 0, obj of rank 1, ...] on every rank."""
    if not is_distributed():
        return [obj]
    gathered = [None] * get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def all_ranks_agree(flag):
    """True only if ``flag`` is true on every rank (one tiny all-reduce)."""
    if not is_distributed():
        return bool(flag)
    device = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def set_sampler_epoch(loader, epoch):
    """A distributed sampler's shuffle depends on (seed, epoch): a new order each epoch."""
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


def shard_indices(num_items, rank=None, world_size=None):
    """This rank's share of ``range(num_items)``: every world_size-th index, no padding."""
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    return list(range(rank, num_items, world_size))


def merge_predictions(per_rank):
    """Concatenate [(indices, outputs, labels)] of all ranks, sorted by index, each once.

    ``indices`` is a 1-D integer tensor; ``outputs`` (the predicted classes, or any
    per-image values) and ``labels`` have one row per index. Returns (indices, outputs,
    labels) as CPU tensors.
    """
    parts = [part for part in per_rank if part is not None and len(part[0])]
    if not parts:
        return torch.empty(0, dtype=torch.long), None, None
    indices = torch.cat([p[0] for p in parts])
    outputs = torch.cat([p[1] for p in parts])
    labels = torch.cat([p[2] for p in parts])
    order = torch.argsort(indices, stable=True)
    indices, outputs, labels = indices[order], outputs[order], labels[order]
    first = torch.ones_like(indices, dtype=torch.bool)
    first[1:] = indices[1:] != indices[:-1]
    return indices[first], outputs[first], labels[first]


def gather_predictions(indices, outputs, labels):
    """Every rank's predictions, merged by ``merge_predictions``, on every rank. Pass the
    predicted classes rather than the scores: everything given is sent to every rank."""
    local = (indices.detach().cpu().long(), outputs.detach().cpu(), labels.detach().cpu())
    return merge_predictions(all_gather_objects(local))


def wrap_in_ddp(module):
    """``module`` in DistributedDataParallel, or None when not distributed or frozen.

    Only parameters with ``requires_grad`` enter DDP's reducer, so the frozen CLIP adds
    no gradient traffic. Buffers are not re-broadcast every forward (they are frozen
    and already equal on every rank after DDP's initial sync from rank 0).
    """
    if not is_distributed() or not any(p.requires_grad for p in module.parameters()):
        return None
    from torch.nn.parallel import DistributedDataParallel

    on_cuda = next(module.parameters()).is_cuda
    newer_torch = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    no_buffer_sync = {"forward_sync_buffers" if newer_torch else "broadcast_buffers": False}
    return DistributedDataParallel(
        module, device_ids=[torch.cuda.current_device()] if on_cuda else None, **no_buffer_sync,
    )


__all__ = [
    "DistributedSetupError", "env_world_size", "is_distributed", "get_rank",
    "get_world_size", "get_local_rank", "is_main_process", "barrier", "init_from_env",
    "shutdown", "broadcast_from_main", "all_gather_objects", "all_ranks_agree",
    "set_sampler_epoch", "shard_indices", "merge_predictions", "gather_predictions", "wrap_in_ddp",
]
