"""Caltech101: 100 object classes (BACKGROUND_Google and Faces_easy are not used)."""
from engine import DATASET_REGISTRY

from datasets.catalog import CATALOG
from datasets.split_file_dataset import SplitFileDataset


@DATASET_REGISTRY.register()
class Caltech101(SplitFileDataset):
    info = CATALOG["Caltech101"]
    dataset_dir = info.folder
    image_subdir = "101_ObjectCategories"
    split_file = "split_zhou_Caltech101.json"
