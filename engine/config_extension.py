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


def extend_cfg(cfg):
    """Add every registered extension's keys to ``cfg`` (call before merging YAML)."""
    import datasets  # noqa: F401  (modules register their keys on import)
    import trainers  # noqa: F401

    for fn in _EXTENSIONS:
        fn(cfg)
    return cfg
