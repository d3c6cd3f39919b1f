"""OxfordPets: 37 cat and dog breeds."""
from engine import DATASET_REGISTRY

from datasets.catalog import CATALOG
from datasets.split_file_dataset import SplitFileDataset


@DATASET_REGISTRY.register()
class OxfordPets(SplitFileDataset):
    info = CATALOG["OxfordPets"]
    dataset_dir = info.folder
    image_subdir = "images"
    split_file = "split_zhou_OxfordPets.json"
