"""Few-shot sampling as Dassl does it, cached as JSON per ``shot_K-seed_S``.

Sampling follows ``DatasetBase.generate_fewshot_dataset``: classes in order of first
appearance, ``random.sample(items, K)`` per class (all items, in order, if fewer), train
first and then val with ``min(K, 4)`` shots. The RNG is ``random.Random(SEED)``, which
yields the same draws as Dassl's global ``random`` right after ``set_random_seed(SEED)``,
but does not depend on what else touched the global RNG.

Caches live in ``<dataset folder>/split_fewshot/shot_K-seed_S.json`` with image paths
relative to the dataset folder, so moving the data root keeps them valid. A cache also
stores a fingerprint of the pool it was drawn from; if the split changed, it is redrawn.
"""
import hashlib
import os
import random

from engine.stale_temp_files import remove_stale_temp_files

from datasets.jsonio import read_json, try_write_json_atomic
from datasets.records import Record

FEWSHOT_DIR = "split_fewshot"
CACHE_FORMAT = "rpp-fewshot/1"
MAX_VAL_SHOTS = 4


def val_shots(num_shots):
    return min(num_shots, MAX_VAL_SHOTS)


def group_by_label(items):
    """Items grouped per label, groups in order of the label's first appearance (as Dassl)."""
    groups = {}
    for item in items:
        groups.setdefault(item.label, []).append(item)
    return list(groups.values())


def sample_groups(groups, num_shots, rng):
    """``num_shots`` random items of each group (any sequence), or all of it if fewer.

    ``rng.sample`` only looks at ``len`` and the drawn positions, so a lazy sequence gives
    the same picks as the equivalent list.
    """
    picked = []
    for group in groups:
        picked.extend(rng.sample(group, num_shots) if len(group) >= num_shots else list(group))
    return picked


def sample_few_shot(pool, num_shots, rng):
    """Dassl's per-class draw from a list of items, or from a pool with ``label_groups()``."""
    groups = pool.label_groups() if hasattr(pool, "label_groups") else group_by_label(pool)
    return sample_groups(groups, num_shots, rng)


def fewshot_cache_path(dataset_dir, num_shots, seed, tag=""):
    """``split_fewshot/shot_K-seed_S.json``; ``tag`` names a non-default pool (e.g. a class set)."""
    suffix = f"-{tag}" if tag else ""
    return os.path.join(dataset_dir, FEWSHOT_DIR, f"shot_{num_shots}-seed_{seed}{suffix}.json")


def fingerprint(dataset_dir, *pools):
    """A short hash of the candidate pools (relative paths + labels), to detect stale caches.

    A pool may provide its own cheaper ``fingerprint()`` (class-folder splits do).
    """
    h = hashlib.sha1()
    skip = len(os.path.join(dataset_dir, ""))
    for pool in pools:
        if hasattr(pool, "fingerprint"):
            h.update(pool.fingerprint().encode())
        else:
            for item in pool:
                h.update(f"{item.impath[skip:]}\t{item.label}\n".encode())
        h.update(b"--\n")
    return h.hexdigest()


def _to_relative(records, dataset_dir):
    out = []
    for r in records:
        rel = os.path.relpath(r.impath, dataset_dir)
        path = r.impath if rel.startswith("..") else rel.replace(os.sep, "/")
        out.append([path, int(r.label), r.classname])
    return out


def pool_labels(*pools):
    """The labels of the pools (class-folder splits answer without listing images)."""
    return {label for pool in pools
            for label in (pool.labels() if hasattr(pool, "labels") else (item.label for item in pool))}


def _from_relative(entries, dataset_dir, labels):
    records = []
    for path, label, name in entries:
        if not isinstance(path, str) or type(label) is not int or label not in labels:
            raise ValueError(f"entry {[path, label, name]!r} has a label that no class of the split has")
        records.append(Record(os.path.join(dataset_dir, path), label, name))
    return records


def _load_cache(path, dataset_dir, num_shots, seed, source, names, labels):
    if not os.path.isfile(path):
        return None
    try:
        data = read_json(path)
        valid = (
            data.get("format") == CACHE_FORMAT and data.get("num_shots") == num_shots
            and data.get("seed") == seed and all(n in data for n in names)
        )
        if not valid:
            print(f"Few-shot cache {path} is from another format; redrawing it")
            return None
        if data.get("source") != source:
            print(f"The split changed since {path} was drawn; redrawing it")
            return None
        return {n: _from_relative(data[n], dataset_dir, labels) for n in names}
    except (ValueError, TypeError, AttributeError, OSError) as exc:
        print(f"Few-shot cache {path} is unreadable ({exc}); redrawing it")
        return None


def cached_fewshot(dataset_dir, num_shots, seed, names, draw, source, labels, tag=""):
    """Load ``shot_K-seed_S.json`` or call ``draw(rng) -> {name: [Record]}`` and cache the result.

    ``names`` are the splits the cache holds; ``source`` fingerprints the pools ``draw``
    samples from, so a cache drawn from a different split is redrawn, not reused.
    ``labels`` (those of the pools) rejects a hand-edited entry whose label is none of
    them, which would otherwise change num_classes and the class names.
    """
    path = fewshot_cache_path(dataset_dir, num_shots, seed, tag)
    remove_stale_temp_files(os.path.dirname(path))
    loaded = _load_cache(path, dataset_dir, num_shots, seed, source, names, labels)
    if loaded is not None:
        print(f"Loading few-shot split from {path}")
        return loaded
    picks = draw(random.Random(seed))
    data = {"format": CACHE_FORMAT, "num_shots": num_shots, "seed": seed, "source": source}
    data.update({n: _to_relative(picks[n], dataset_dir) for n in names})
    if try_write_json_atomic(path, data):
        print(f"Saved few-shot split to {path}")
    return picks


def fewshot_train_val(dataset_dir, num_shots, seed, train, val=None, tag=""):
    """CoOp's few-shot split: K shots per class of train, min(K, 4) of val (if given).

    Returns ``(train, val)``; with ``num_shots < 1`` the inputs come back unchanged.
    """
    if num_shots < 1:
        return train, val
    pools = {"train": train} if val is None else {"train": train, "val": val}

    def draw(rng):
        picks = {"train": sample_few_shot(train, num_shots, rng)}
        if val is not None:
            picks["val"] = sample_few_shot(val, val_shots(num_shots), rng)
        return picks

    source = fingerprint(dataset_dir, *pools.values())
    labels = pool_labels(*pools.values())
    picks = cached_fewshot(dataset_dir, num_shots, seed, tuple(pools), draw, source, labels, tag)
    return picks["train"], picks.get("val", val)
