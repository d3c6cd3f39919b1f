"""Food101: 101 dishes."""
from engine import DATASET_REGISTRY

from datasets.catalog import CATALOG
from datasets.split_file_dataset import SplitFileDataset


@DATASET_REGISTRY.register()
class Food101(SplitFileDataset):
    info = CATALOG["Food101"]
    dataset_dir = info.folder
    image_subdir = "images"
    split_file = "split_zhou_Food101.json"
