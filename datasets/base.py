"""BenchmarkDataset: the one __init__ every dataset class shares.

A subclass says where it lives (``info``, from the catalog) and how to turn its files
into records (``read_records``); locating, layout checks, few-shot caching, base/new
subsampling and Datum construction happen here, identically for every dataset.
"""
from engine import DatasetBase

from datasets.pipeline import build_splits, dataset_folder, require_layout


class BenchmarkDataset(DatasetBase):
    info = None  # a catalog.DatasetInfo

    def __init__(self, cfg):
        self.dataset_dir = dataset_folder(cfg, self.info)
        self.prepare(cfg)
        splits = self.read_records(self.dataset_dir, cfg)
        train_x, val, test = self.finish(cfg, splits)
        super().__init__(train_x=train_x, val=val, test=test)

    def prepare(self, cfg):
        """Make sure the files exist (the Demo generates them instead)."""
        self.check_layout(self.dataset_dir)

    @classmethod
    def check_layout(cls, dataset_dir):
        require_layout(cls.info, dataset_dir)

    @classmethod
    def read_records(cls, dataset_dir, cfg):
        """``{"train": [Record], "val": [Record] or None, "test": [Record]}`` for the whole dataset."""
        raise NotImplementedError

    def finish(self, cfg, splits):
        return build_splits(cfg, self.info, self.dataset_dir, splits["train"], splits["val"], splits["test"])
