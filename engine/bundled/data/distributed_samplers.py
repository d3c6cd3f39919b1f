"""Samplers for multi-process runs: one share of the data per rank.

Training shuffles with torch's DistributedSampler, seeded from cfg.SEED so every rank
draws the same permutation and takes its own slice; the trainer calls ``set_epoch``
so each epoch has a new, reproducible order. The few-shot subset itself was drawn
before (from the same global seed on every rank), so all ranks split the same images.

Evaluation uses ``ShardSampler``: rank r gets indices r, r + W, r + 2W, ... with no
padding, so with an uneven split no image is dropped or counted twice.
"""
import random

from torch.utils.data import DistributedSampler, Sampler

from engine.distributed import broadcast_from_main, get_rank, get_world_size, shard_indices
from engine.user_errors import UserError

# Batch-structured samplers would need a per-rank batch plan; not supported yet.
UNSHARDABLE_TRAIN_SAMPLERS = ("RandomDomainSampler", "SeqDomainSampler", "RandomClassSampler")


class ShardSampler(Sampler):
    """Every ``world_size``-th index starting at ``rank``, in order, without padding."""

    def __init__(self, data_source, rank=None, world_size=None):
        self.indices = shard_indices(len(data_source), rank, world_size)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


def shuffle_seed(cfg):
    """cfg.SEED, or (unseeded run) one random seed chosen by rank 0 and shared."""
    if cfg is not None and cfg.SEED >= 0:
        return int(cfg.SEED)
    return broadcast_from_main(random.randrange(2**31))


def build_distributed_sampler(sampler_type, cfg, data_source, is_train):
    if not is_train:
        return ShardSampler(data_source)
    if sampler_type in UNSHARDABLE_TRAIN_SAMPLERS:
        raise UserError(
            f"DATALOADER sampler {sampler_type} is not supported in multi-process runs; "
            "use RandomSampler or run a single process"
        )
    return DistributedSampler(
        data_source, num_replicas=get_world_size(), rank=get_rank(),
        shuffle=sampler_type != "SequentialSampler", seed=shuffle_seed(cfg), drop_last=False,
    )
