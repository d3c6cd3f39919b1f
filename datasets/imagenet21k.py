"""ImageNet-21K in POMP's layout: MIIL's processed winter-21 release.

``imagenet21k_resized/imagenet21k_train/<wnid>/`` (~10.4K classes) and ``imagenet21k_val/``
(same classes; val = test, as in POMP), class names from the ``class_description`` of
``imagenet21k_miil_tree.pth`` (or a ``classnames.txt``). ``DATASET.IN21K_CLASS_SET all``
also trains on ``imagenet21k_small_classes/`` (~8.7K more classes with no val images).
Labels are positions in the sorted list of class folders. Listings are cached as JSON
(see folder_index), and few-shot sampling only builds records for the drawn images.
"""
import os

from engine import DATASET_REGISTRY

from datasets.base import BenchmarkDataset
from datasets.catalog import CATALOG, IN21K_CLASSNAMES, IN21K_SMALL_CLASSES
from datasets.class_folders import ClassFolderSplit
from datasets.classnames import lookup_classname, read_classnames
from datasets.config_keys import IN21K_CLASS_SETS
from datasets.errors import DatasetNotFoundError, SplitFileError
from datasets.folder_index import list_subfolders, load_folder_index
from datasets.imagenet_common import index_cache_path, require_images_in_every_folder
from datasets.pipeline import build_splits, require

INFO = CATALOG["ImageNet21K"]
TRAIN_DIR, VAL_DIR, SMALL_DIR = "imagenet21k_train", "imagenet21k_val", "imagenet21k_small_classes"


def read_miil_tree_classnames(path):
    """``{wnid: description}`` from MIIL's tree file, loaded without unpickling code objects."""
    import torch

    fix = "write classnames.txt next to it with one '<wnid> <class name>' per line"
    try:
        tree = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt / unsafe files
        raise SplitFileError(INFO.name, path, f"torch.load(weights_only=True) failed ({exc})", fix) from exc
    names = tree.get("class_description") if isinstance(tree, dict) else None
    if not isinstance(names, dict):
        raise SplitFileError(INFO.name, path, "it has no 'class_description' dict", fix)
    return {str(k): str(v) for k, v in names.items()}


def load_in21k_classnames(dataset_dir):
    """Class names from classnames.txt if present (an explicit override), else the MIIL tree."""
    txt = os.path.join(dataset_dir, "classnames.txt")
    if os.path.isfile(txt):
        return txt, read_classnames(txt, INFO.name, fix=IN21K_CLASSNAMES.fix)
    tree = require(INFO, dataset_dir, IN21K_CLASSNAMES)
    return tree, read_miil_tree_classnames(tree)


def check_class_set(class_set):
    if class_set not in IN21K_CLASS_SETS:
        raise ValueError(
            f"DATASET.IN21K_CLASS_SET must be one of {', '.join(IN21K_CLASS_SETS)}, got {class_set!r}"
        )


@DATASET_REGISTRY.register()
class ImageNet21K(BenchmarkDataset):
    info = INFO
    dataset_dir = INFO.folder

    @classmethod
    def read_records(cls, dataset_dir, cfg):
        class_set = cfg.DATASET.IN21K_CLASS_SET
        check_class_set(class_set)
        names_path, classnames = load_in21k_classnames(dataset_dir)
        parents = [TRAIN_DIR]
        if class_set == "all":
            require(INFO, dataset_dir, IN21K_SMALL_CLASSES)
            parents.append(SMALL_DIR)
        parents.append(VAL_DIR)
        indexes = {}
        for parent in parents:
            split_dir = os.path.join(dataset_dir, parent)
            wnids = list_subfolders(split_dir)
            indexes[parent] = load_folder_index(split_dir, wnids, index_cache_path(dataset_dir, split_dir))

        # Labels: positions in the sorted list of all training class folders.
        train_classes = sorted((w, p) for p in parents if p != VAL_DIR for w in indexes[p].folders)
        label_of = {wnid: label for label, (wnid, _) in enumerate(train_classes)}
        if len(label_of) != len(train_classes):
            raise SplitFileError(INFO.name, os.path.join(dataset_dir, SMALL_DIR),
                                 "a class folder also exists in imagenet21k_train", "remove the duplicate")
        names = {
            wnid: lookup_classname(classnames, wnid, INFO.name, names_path, IN21K_CLASSNAMES.fix)
            for wnid in label_of
        }
        val_wnids = indexes[VAL_DIR].folders
        unknown = [w for w in val_wnids if w not in label_of]
        if unknown:
            raise DatasetNotFoundError(
                INFO.name, os.path.join(dataset_dir, TRAIN_DIR, unknown[0]),
                f"training folder of {len(unknown)} validation classes",
                INFO.requirements[0].fix, INFO.section,
            )
        train = ClassFolderSplit((indexes[p], w, label_of[w], names[w]) for w, p in train_classes)
        test = ClassFolderSplit((indexes[VAL_DIR], w, label_of[w], names[w]) for w in val_wnids)
        for split in (train, test):
            require_images_in_every_folder(INFO, split)
        return {"train": train, "val": None, "test": test}

    def finish(self, cfg, splits):
        tag = "" if cfg.DATASET.IN21K_CLASS_SET == "pomp" else cfg.DATASET.IN21K_CLASS_SET
        return build_splits(cfg, self.info, self.dataset_dir, splits["train"], None, splits["test"], tag)
