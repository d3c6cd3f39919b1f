"""ImageNet (ILSVRC-2012): 1,000 classes; labels follow the sorted ``images/train`` folders,
names come from CoOp's ``classnames.txt``. As in CoOp, only train is few-shot sampled and
the official val set is both val and test."""
import os

from engine import DATASET_REGISTRY

from datasets.base import BenchmarkDataset
from datasets.catalog import CATALOG
from datasets.classnames import lookup_classname
from datasets.folder_index import list_subfolders
from datasets.imagenet_common import folder_split, load_classnames, requirement

INFO = CATALOG["ImageNet"]


@DATASET_REGISTRY.register()
class ImageNet(BenchmarkDataset):
    info = INFO
    dataset_dir = INFO.folder

    @classmethod
    def read_records(cls, dataset_dir, cfg):
        classnames = load_classnames(INFO, dataset_dir)
        names_req = requirement(INFO, "classnames.txt")
        names_path = os.path.join(dataset_dir, names_req.path)
        train_dir = os.path.join(dataset_dir, "images", "train")
        folders = list_subfolders(train_dir)
        label_of = {folder: label for label, folder in enumerate(folders)}
        for folder in folders:  # fail before listing 1.28M files, not after
            lookup_classname(classnames, folder, INFO.name, names_path, names_req.fix)
        splits = {}
        for name, subdir in (("train", "train"), ("test", "val")):
            split_dir = os.path.join(dataset_dir, "images", subdir)
            splits[name] = folder_split(
                INFO, dataset_dir, split_dir, folders, label_of, classnames, names_path, names_req.fix
            )
        splits["val"] = None  # CoOp's ImageNet protocol: val = test
        return splits
