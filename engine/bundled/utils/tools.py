"""Small file, JSON, image and parameter-count helpers."""
import errno
import json
import os
import os.path as osp
import warnings

from PIL import Image


def mkdir_if_missing(dirname):
    """Create ``dirname`` (and parents); an existing directory is fine."""
    if not osp.exists(dirname):
        try:
            os.makedirs(dirname)
        except OSError as e:
            if e.errno != errno.EEXIST:  # another process may create it concurrently
                raise


def read_json(fpath):
    with open(fpath, "r") as f:
        return json.load(f)


def write_json(obj, fpath):
    """Write ``obj`` as indented JSON, creating the parent directory if needed."""
    parent = osp.dirname(fpath)
    if parent:
        mkdir_if_missing(parent)
    with open(fpath, "w") as f:
        json.dump(obj, f, indent=4, separators=(",", ": "))


def listdir_nohidden(path, sort=False):
    """``os.listdir`` without names starting with "." (e.g. .DS_Store, temp files)."""
    items = [name for name in os.listdir(path) if not name.startswith(".")]
    if sort:
        items.sort()
    return items


def check_isfile(fpath):
    isfile = osp.isfile(fpath)
    if not isfile:
        warnings.warn(f'No file found at "{fpath}"')
    return isfile


def read_image(path):
    """Open an image file as an RGB ``PIL.Image`` (wide greyscale modes by their value
    range, as the data loader reads them: ``image_decoding``)."""
    from engine.bundled.data.image_decoding import open_rgb  # the data package imports this module

    return open_rgb(path)


def count_num_param(model=None, params=None):
    """Number of parameter elements, frozen ones included.

    ``params`` may mix tensors and param-group dicts (whose ``"params"`` is a
    tensor or a list of tensors).
    """
    if model is not None:
        return sum(p.numel() for p in model.parameters())
    if params is not None:
        total = 0
        for p in params:
            if isinstance(p, dict):
                group = p["params"]
                total += group.numel() if hasattr(group, "numel") else sum(t.numel() for t in group)
            else:
                total += p.numel()
        return total
    raise ValueError("count_num_param needs a model or params")
