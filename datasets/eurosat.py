"""EuroSAT: 10 land-cover classes; the split file carries CoOp's readable names
("Annual Crop Land" for the folder AnnualCrop, ...)."""
from engine import DATASET_REGISTRY

from datasets.catalog import CATALOG
from datasets.split_file_dataset import SplitFileDataset


@DATASET_REGISTRY.register()
class EuroSAT(SplitFileDataset):
    info = CATALOG["EuroSAT"]
    dataset_dir = info.folder
    image_subdir = "2750"
    split_file = "split_zhou_EuroSAT.json"
