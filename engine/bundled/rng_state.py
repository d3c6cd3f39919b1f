"""Every global RNG state as checkpoint data, so a resumed run repeats the interrupted one.

The states fix the sampler order, the augmentations and the sampled classes. They are
kept as plain tensors and numbers so that ``torch.load(weights_only=True)`` reads them.
In multi-process runs rank 0 saves every rank's state (each rank draws its own
augmentations) and each rank resumes from its own.
"""
import random

import numpy as np
import torch

from engine.distributed import all_gather_objects, get_rank, get_world_size, is_distributed


def rng_state():
    """The torch, NumPy, Python (and CUDA) RNG states of this process."""
    version, mt_state, gauss = random.getstate()
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
            "has_gauss": int(np_has_gauss), "gauss": float(np_gauss),
        },
        "python": {"version": version, "state": torch.tensor(mt_state, dtype=torch.int64),
                   "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state((
        "MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
        np_state["has_gauss"], np_state["gauss"],
    ))
    py_state = state["python"]
    random.setstate((py_state["version"], tuple(py_state["state"].tolist()), py_state["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def per_rank(state):
    """In multi-process runs, every rank's ``state`` (a list, saved by rank 0)."""
    return all_gather_objects(state) if is_distributed() else state


def this_ranks(state):
    """The state this process resumes from: its own from a multi-process checkpoint of
    the same size, else rank 0's (or the single one)."""
    if not isinstance(state, list):
        return state
    return state[get_rank()] if len(state) == get_world_size() else state[0]
