"""SUN397: 397 scene categories."""
from engine import DATASET_REGISTRY

from datasets.catalog import CATALOG
from datasets.split_file_dataset import SplitFileDataset


@DATASET_REGISTRY.register()
class SUN397(SplitFileDataset):
    info = CATALOG["SUN397"]
    dataset_dir = info.folder
    image_subdir = "SUN397"
    split_file = "split_zhou_SUN397.json"
