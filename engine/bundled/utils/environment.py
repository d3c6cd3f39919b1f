"""Seeding and the environment report printed at the start of a run."""
import random

import numpy as np
import PIL
import torch


def set_random_seed(seed):
    """Seed Python, NumPy and torch (CPU and every GPU). cuDNN flags are left alone."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def collect_env_info():
    """torch's environment report plus the Pillow version."""
    from torch.utils.collect_env import get_pretty_env_info  # slow: runs pip/nvidia-smi

    return get_pretty_env_info() + f"\n        Pillow ({PIL.__version__})"
