"""UCF101: 101 actions, one middle frame per video (CoOp's ``UCF-101-midframes``)."""
from engine import DATASET_REGISTRY

from datasets.catalog import CATALOG
from datasets.split_file_dataset import SplitFileDataset


@DATASET_REGISTRY.register()
class UCF101(SplitFileDataset):
    info = CATALOG["UCF101"]
    dataset_dir = info.folder
    image_subdir = "UCF-101-midframes"
    split_file = "split_zhou_UCF101.json"
