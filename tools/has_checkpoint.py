"""``python3 -m tools.has_checkpoint RUN_DIR``: exit 0 if RUN_DIR holds a checkpoint to
resume from (``--resume``), 1 if not.

The sweeps (scripts/common.sh) ask this before deciding between ``--resume`` and a
fresh run, so they use the definition train.py and ``--resume`` use
(``engine/checkpoint_files.py``). That module is loaded by its file: importing the
``engine`` package would import torch, seconds for every run of a sweep.
"""
import importlib.util
import os.path as osp
import sys

RULES = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), "engine", "checkpoint_files.py")


def load_checkpoint_files():
    spec = importlib.util.spec_from_file_location("checkpoint_files", RULES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python3 -m tools.has_checkpoint RUN_DIR", file=sys.stderr)
        return 2
    return 0 if load_checkpoint_files().has_checkpoint(argv[0]) else 1


if __name__ == "__main__":
    sys.exit(main())
