"""Config keys that are ours rather than Dassl's.

Dassl's defaults know nothing of ``DATASET.SUBSAMPLE_CLASSES`` or ``TRAINER.<METHOD>``;
yacs rejects unknown keys while merging, so every module that needs a new key
registers a function here, and ``extend_cfg`` runs them all before any YAML is merged.
"""
from yacs.config import CfgNode as CN

_EXTENSIONS = []


def config_extension(fn):
    """Decorator: ``fn(cfg)`` adds keys to the default config (run by ``extend_cfg``)."""
    _EXTENSIONS.append(fn)
    return fn


def add_node(cfg, dotted_key, node_dict):
    """Create ``cfg.<dotted_key>`` as a CfgNode holding ``node_dict`` if it is missing."""
    parent = cfg
    *path, leaf = dotted_key.split(".")
    for name in path:
        parent = parent[name]
    if leaf not in parent:
        parent[leaf] = CN(node_dict)
    else:
        for key, value in node_dict.items():
            if key not in parent[leaf]:
                parent[leaf][key] = value
    return parent[leaf]


@config_extension
def _toolbox_keys(cfg):
    cfg.DATASET.SUBSAMPLE_CLASSES = "all"  # all | base | new (CoCoOp's base-to-new protocol)
    cfg.MODEL.BACKBONE.PATH = ""  # explicit CLIP weights file; searched first


@config_extension
def _reliability_keys(cfg):
    # Also save a resumable checkpoint every N batches within an epoch (0: only at epoch
    # ends, per TRAIN.CHECKPOINT_FREQ); a mid-epoch resume skips the batches already done.
    cfg.TRAIN.CHECKPOINT_ITERS = 0
    # Skip (and count) steps whose loss is NaN/inf; abort after this many in a row
    # (1: abort at the first one, as Dassl does; 0: never abort).
    cfg.TRAIN.MAX_NONFINITE_STEPS = 5
    # An image that cannot be decoded: "fail" (stop, naming the file) or "skip" (drop it
    # from its batch and report the count at the end of the epoch / test).
    cfg.DATALOADER.CORRUPT_IMAGE = "fail"


def extend_cfg(cfg):
    """Add every registered extension's keys to ``cfg`` (call before merging YAML)."""
    import datasets  # noqa: F401  (modules register their keys on import)
    import trainers  # noqa: F401

    for fn in _EXTENSIONS:
        fn(cfg)
    return cfg
