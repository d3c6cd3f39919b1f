"""Config keys that are ours rather than Dassl's.

Dassl's defaults know nothing of ``DATASET.SUBSAMPLE_CLASSES`` or ``TRAINER.<METHOD>``;
yacs rejects unknown keys while merging, so every module that needs a new key
registers a function here, and ``extend_cfg`` runs them all before any YAML is merged.

A trainer's own node is declared on the class (``TrainerConfigNode``): ``config_node``
names it with Dassl's spelling and ``config_keys`` gives its keys, and a subclass with a
node of its own inherits its ancestors' keys, so a method built on another one does not
copy that one's key list.
"""
from yacs.config import CfgNode as CN

_EXTENSIONS = []
_NODE_OWNERS = []  # trainer classes that declare a config node of their own


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


class TrainerConfigNode:
    """Mixin for trainer classes whose options are ``cfg.TRAINER.<config_node>``.

    ``config_node`` is the node's name (Dassl's spelling, e.g. "COOP") and
    ``config_keys`` the keys the class adds, with their defaults. A subclass that sets
    its own ``config_node`` gets a node holding every ancestor's keys plus its own (which
    may also change an inherited default)::

        class KgCoOp(CoOp):
            config_node = "KGCOOP"
            config_keys = {"W": 8.0}  # TRAINER.KGCOOP: CoOp's N_CTX, CSC, ... and W

    A subclass without a ``config_node`` of its own reads its parent's node (and may not
    add keys to it). ``options(cfg)`` is the node; ``config_path()`` its name in messages.
    """

    config_node = None
    config_keys = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        if "config_keys" in own and "config_node" not in own:
            raise TypeError(f"{cls.__name__} declares config_keys but no config_node of its "
                            "own; give it one (its parent's keys come with it)")
        if own.get("config_node"):
            _NODE_OWNERS.append(cls)

    @classmethod
    def node_keys(cls):
        """The node's keys and defaults: every ancestor's ``config_keys``, nearest last."""
        keys = {}
        for klass in reversed(cls.__mro__):
            keys.update(vars(klass).get("config_keys") or {})
        return keys

    @classmethod
    def options(cls, cfg):
        return cfg.TRAINER[cls.config_node]

    @classmethod
    def config_path(cls):
        """"TRAINER.<config_node>", for messages naming a key."""
        return f"TRAINER.{cls.config_node}"


@config_extension
def _trainer_nodes(cfg):
    for owner in _NODE_OWNERS:
        add_node(cfg, owner.config_path(), owner.node_keys())


@config_extension
def _toolbox_keys(cfg):
    cfg.DATASET.SUBSAMPLE_CLASSES = "all"  # all | base | new (CoCoOp's base-to-new protocol)
    cfg.MODEL.BACKBONE.PATH = ""  # explicit CLIP weights file; searched first
    # Set by train.py --eval-only (as --resume sets RESUME): trainers then build only what
    # evaluation needs (no KD teacher, optimizer or class sampler) and say only what applies.
    cfg.EVAL_ONLY = False


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
