"""Test-only ImageNet variants (V2, Sketch, A, R), mapped to ImageNet's class names as CoOp does.

They ignore NUM_SHOTS and SUBSAMPLE_CLASSES (they are only evaluated on) and, like CoOp,
expose the images as both train_x (which fixes num_classes and class names) and test.
"""
import os

from datasets.base import BenchmarkDataset
from datasets.imagenet_common import load_classnames, sorted_wnid_split
from datasets.pipeline import missing_images_fix
from datasets.records import to_datums


class ImageNetVariant(BenchmarkDataset):
    image_subdir = ""
    ignored = ()  # top-level entries that are not class folders

    @classmethod
    def read_records(cls, dataset_dir, cfg):
        classnames = load_classnames(cls.info, dataset_dir)
        split_dir = os.path.join(dataset_dir, cls.image_subdir)
        test = sorted_wnid_split(cls.info, dataset_dir, split_dir, classnames, ignore=cls.ignored)
        return {"train": None, "val": None, "test": test}

    def finish(self, cfg, splits):
        data = to_datums(splits["test"], self.info.name, missing_images_fix(self.info))
        return data, None, data
