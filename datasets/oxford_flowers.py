"""OxfordFlowers: 102 flower species (names from ``cat_to_name.json``, already in the split)."""
from engine import DATASET_REGISTRY

from datasets.catalog import CATALOG
from datasets.split_file_dataset import SplitFileDataset


@DATASET_REGISTRY.register()
class OxfordFlowers(SplitFileDataset):
    info = CATALOG["OxfordFlowers"]
    dataset_dir = info.folder
    image_subdir = "jpg"
    split_file = "split_zhou_OxfordFlowers.json"
