"""Samplers by name: torch's Random/Sequential plus three group-balanced samplers.

The group samplers (by domain or by class) yield flat index lists in which every
consecutive ``batch_size`` indices form one balanced batch, so they work with a plain
``DataLoader(batch_size=...)``. Their ``len`` is exact and fixed, because the
trainer reads ``len(loader)`` for its progress and ETA lines.
"""
import random
from collections import defaultdict

from torch.utils.data import RandomSampler, Sampler, SequentialSampler

SAMPLER_NAMES = (
    "RandomSampler", "SequentialSampler", "RandomDomainSampler", "SeqDomainSampler",
    "RandomClassSampler",
)


def _group_indices(data_source, key):
    groups = defaultdict(list)
    for index, item in enumerate(data_source):
        groups[key(item)].append(index)
    return groups


def _chunk(indices, size):
    """Consecutive chunks of exactly ``size`` (the remainder is dropped)."""
    return [indices[i : i + size] for i in range(0, len(indices) - size + 1, size)]


def _max_rounds(chunk_counts, groups_per_round):
    """How many rounds can each take one chunk from ``groups_per_round`` distinct groups.

    R rounds are possible iff sum(min(count, R)) >= groups_per_round * R (a group
    gives at most one chunk per round). That slack is concave in R and 0 at R=0, so
    the feasible R form a prefix of the integers and a binary search finds the end.
    """

    def feasible(rounds):
        return sum(min(c, rounds) for c in chunk_counts) >= groups_per_round * rounds

    low, high = 0, sum(chunk_counts) // groups_per_round
    while low < high:
        mid = (low + high + 1) // 2
        if feasible(mid):
            low = mid
        else:
            high = mid - 1
    return low


def _schedule_rounds(chunks_by_group, groups_per_round):
    """Batches made of one chunk from each of ``groups_per_round`` distinct groups.

    Each round takes the groups with the most chunks left (random among ties), which
    reaches the maximum number of rounds and spreads the batches evenly over groups;
    the batch order is then shuffled.
    """
    pools = [list(chunks) for chunks in chunks_by_group if chunks]
    rounds = _max_rounds([len(p) for p in pools], groups_per_round)
    batches = []
    for _ in range(rounds):
        order = sorted(pools, key=lambda pool: (len(pool), random.random()), reverse=True)
        batch = []
        for pool in order[:groups_per_round]:
            batch.extend(pool.pop())
        batches.append(batch)
    random.shuffle(batches)
    return batches


def _shuffled(indices):
    indices = list(indices)
    random.shuffle(indices)
    return indices


class RandomDomainSampler(Sampler):
    """Each batch holds ``batch_size // n_domain`` random images from each of ``n_domain``
    distinct domains. ``n_domain <= 0`` means every domain in the data."""

    def __init__(self, data_source, batch_size, n_domain):
        self.groups = _group_indices(data_source, lambda item: item.domain)
        if n_domain <= 0:
            n_domain = len(self.groups)
        if n_domain > len(self.groups):
            raise ValueError(f"n_domain={n_domain} but the data has {len(self.groups)} domains")
        if batch_size % n_domain != 0:
            raise ValueError(f"batch_size={batch_size} is not divisible by n_domain={n_domain}")
        self.n_domain = n_domain
        self.per_domain = batch_size // n_domain
        counts = [len(idx) // self.per_domain for idx in self.groups.values()]
        self.length = _max_rounds(counts, n_domain) * batch_size

    def __iter__(self):
        chunks = [_chunk(_shuffled(idx), self.per_domain) for idx in self.groups.values()]
        return iter([i for batch in _schedule_rounds(chunks, self.n_domain) for i in batch])

    def __len__(self):
        return self.length


class SeqDomainSampler(Sampler):
    """Each batch holds ``batch_size // n_domains`` random images from every domain,
    domains in sorted order within the batch; stops when the smallest domain runs out."""

    def __init__(self, data_source, batch_size):
        groups = _group_indices(data_source, lambda item: item.domain)
        self.groups = [groups[d] for d in sorted(groups)]
        if not self.groups or batch_size % len(self.groups) != 0:
            raise ValueError(
                f"batch_size={batch_size} is not divisible by the number of domains "
                f"({len(self.groups)})"
            )
        self.per_domain = batch_size // len(self.groups)
        self.rounds = min(len(idx) for idx in self.groups) // self.per_domain
        self.length = self.rounds * batch_size

    def __iter__(self):
        chunks = [_chunk(_shuffled(idx), self.per_domain) for idx in self.groups]
        return iter([i for r in range(self.rounds) for group in chunks for i in group[r]])

    def __len__(self):
        return self.length


class RandomClassSampler(Sampler):
    """Each batch holds ``n_ins`` images from each of ``batch_size // n_ins`` distinct
    classes. A class with fewer than ``n_ins`` images is padded by drawing with
    replacement, so every class can appear."""

    def __init__(self, data_source, batch_size, n_ins):
        if n_ins <= 0 or batch_size % n_ins != 0:
            raise ValueError(f"batch_size={batch_size} is not divisible by n_ins={n_ins}")
        self.groups = _group_indices(data_source, lambda item: item.label)
        self.n_ins = n_ins
        self.classes_per_batch = batch_size // n_ins
        if self.classes_per_batch > len(self.groups):
            raise ValueError(
                f"batch_size // n_ins = {self.classes_per_batch} classes per batch but the "
                f"data has {len(self.groups)} classes"
            )
        counts = [max(1, len(idx) // n_ins) for idx in self.groups.values()]
        self.length = _max_rounds(counts, self.classes_per_batch) * batch_size

    def _class_chunks(self, indices):
        if len(indices) < self.n_ins:
            indices = indices + random.choices(indices, k=self.n_ins - len(indices))
        return _chunk(_shuffled(indices), self.n_ins)

    def __iter__(self):
        chunks = [self._class_chunks(idx) for idx in self.groups.values()]
        batches = _schedule_rounds(chunks, self.classes_per_batch)
        return iter([i for batch in batches for i in batch])

    def __len__(self):
        return self.length


def build_sampler(sampler_type, cfg=None, data_source=None, batch_size=32, n_domain=0, n_ins=2):
    if sampler_type == "RandomSampler":
        return RandomSampler(data_source)
    if sampler_type == "SequentialSampler":
        return SequentialSampler(data_source)
    if sampler_type == "RandomDomainSampler":
        return RandomDomainSampler(data_source, batch_size, n_domain)
    if sampler_type == "SeqDomainSampler":
        return SeqDomainSampler(data_source, batch_size)
    if sampler_type == "RandomClassSampler":
        return RandomClassSampler(data_source, batch_size, n_ins)
    raise ValueError(f"Unknown sampler type: {sampler_type!r}; choose from {list(SAMPLER_NAMES)}")
