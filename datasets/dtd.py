"""DescribableTextures (DTD): 47 texture classes."""
from engine import DATASET_REGISTRY

from datasets.catalog import CATALOG
from datasets.split_file_dataset import SplitFileDataset


@DATASET_REGISTRY.register()
class DescribableTextures(SplitFileDataset):
    info = CATALOG["DescribableTextures"]
    dataset_dir = info.folder
    image_subdir = "images"
    split_file = "split_zhou_DescribableTextures.json"
