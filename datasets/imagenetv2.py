"""ImageNetV2 (matched frequency): 10 images for each of the 1,000 ImageNet classes.

Its folders are named by label ("0" ... "999"); the class name of label i is line i of
ImageNet's classnames.txt, as in CoOp.
"""
import os

from engine import DATASET_REGISTRY

from datasets.catalog import CATALOG
from datasets.imagenet_common import folder_split, load_classnames, requirement
from datasets.imagenet_variant import ImageNetVariant

INFO = CATALOG["ImageNetV2"]


@DATASET_REGISTRY.register()
class ImageNetV2(ImageNetVariant):
    info = INFO
    dataset_dir = INFO.folder
    image_subdir = "imagenetv2-matched-frequency-format-val"

    @classmethod
    def read_records(cls, dataset_dir, cfg):
        names = list(load_classnames(INFO, dataset_dir).values())
        folders = [str(label) for label in range(len(names))]
        req = requirement(INFO, "classnames.txt")
        test = folder_split(
            INFO, dataset_dir, os.path.join(dataset_dir, cls.image_subdir), folders,
            label_of={f: int(f) for f in folders}, classnames=dict(zip(folders, names)),
            classnames_path=os.path.join(dataset_dir, req.path), fix=req.fix,
        )
        return {"train": None, "val": None, "test": test}
