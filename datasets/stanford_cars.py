"""StanfordCars: 196 car models. Split paths are relative to the dataset folder
(``cars_train/...``, ``cars_test/...``), not to an image folder."""
from engine import DATASET_REGISTRY

from datasets.catalog import CATALOG
from datasets.split_file_dataset import SplitFileDataset


@DATASET_REGISTRY.register()
class StanfordCars(SplitFileDataset):
    info = CATALOG["StanfordCars"]
    dataset_dir = info.folder
    image_subdir = ""
    split_file = "split_zhou_StanfordCars.json"
