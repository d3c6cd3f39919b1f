"""ImageNet-R: renditions (art, cartoons, ...) of 200 ImageNet classes.

Labels are 0..199 over the sorted wnid folders present (not ImageNet's label ids), as in CoOp.
"""
from engine import DATASET_REGISTRY

from datasets.catalog import CATALOG
from datasets.imagenet_variant import ImageNetVariant


@DATASET_REGISTRY.register()
class ImageNetR(ImageNetVariant):
    info = CATALOG["ImageNetR"]
    dataset_dir = info.folder
    image_subdir = "imagenet-r"
    ignored = ("README.txt",)
