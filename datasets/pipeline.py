"""The steps every dataset class shares: locate its folder, check the layout, then
few-shot sample, base/new subsample and build Datums -- in that order, as CoOp does."""
import os

from datasets.errors import DatasetNotFoundError
from datasets.fewshot import fewshot_train_val
from datasets.records import to_datums
from datasets.subsample import check_subsample, subsample_classes


def data_root(cfg):
    return os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT))


def dataset_folder(cfg, info):
    return os.path.join(data_root(cfg), info.folder)


def require(info, dataset_dir, requirement):
    """Raise DatasetNotFoundError (with the DATASETS.md step) unless ``requirement`` exists."""
    path = os.path.join(dataset_dir, requirement.path)
    if not os.path.exists(path):
        raise DatasetNotFoundError(info.name, path, requirement.what, requirement.fix, info.section)
    return path


def require_layout(info, dataset_dir):
    """Check the dataset folder and every required file/folder, in DATASETS.md order."""
    if not os.path.isdir(dataset_dir):
        fix = info.requirements[0].fix if info.requirements else "see below"
        raise DatasetNotFoundError(
            info.name, dataset_dir, f"dataset folder ({info.folder}/ under DATASET.ROOT)", fix, info.section
        )
    for requirement in info.requirements:
        require(info, dataset_dir, requirement)


def missing_images_fix(info):
    step = info.requirements[0].fix if info.requirements else "regenerate the dataset"
    return (
        f"the image folder is incomplete or the split file belongs to another copy: {step} "
        f"`python tools/check_dataset.py --dataset {info.config}` lists every missing file."
    )


def build_splits(cfg, info, dataset_dir, train, val, test, cache_tag=""):
    """Few-shot (train K/class, val min(K,4)), subsample base/new, then make Datums.

    ``val=None`` is ImageNet's protocol: only train is few-shot sampled and val = test.
    ``cache_tag`` keeps few-shot caches of different pools of one dataset apart.
    """
    subsample = cfg.DATASET.SUBSAMPLE_CLASSES
    check_subsample(subsample)  # fail before any sampling or caching happens
    train, val = fewshot_train_val(dataset_dir, cfg.DATASET.NUM_SHOTS, cfg.SEED, train, val, cache_tag)
    if val is None:
        train, test = subsample_classes(train, test, subsample=subsample)
    else:
        train, val, test = subsample_classes(train, val, test, subsample=subsample)
    fix = missing_images_fix(info)
    train_x = to_datums(train, info.name, fix)
    test = to_datums(test, info.name, fix)
    val = test if val is None else to_datums(val, info.name, fix)
    return train_x, val, test
