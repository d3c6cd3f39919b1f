"""Datasets defined by a CoOp split file ``split_zhou_<Name>.json`` (most of the benchmark)."""
import os

from datasets.base import BenchmarkDataset
from datasets.splits import read_split


class SplitFileDataset(BenchmarkDataset):
    image_subdir = ""  # the folder the split's impaths are relative to ("" = dataset folder)
    split_file = ""

    @classmethod
    def split_fix(cls):
        for requirement in cls.info.requirements:
            if requirement.path == cls.split_file:
                return requirement.fix
        return "regenerate the split file"

    @classmethod
    def read_records(cls, dataset_dir, cfg):
        image_dir = os.path.join(dataset_dir, cls.image_subdir)
        split_path = os.path.join(dataset_dir, cls.split_file)
        return read_split(split_path, image_dir, cls.info.name, fix=cls.split_fix())
