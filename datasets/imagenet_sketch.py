"""ImageNet-Sketch: 50,889 sketches of the 1,000 ImageNet classes (labels = sorted wnid folders)."""
from engine import DATASET_REGISTRY

from datasets.catalog import CATALOG
from datasets.imagenet_variant import ImageNetVariant


@DATASET_REGISTRY.register()
class ImageNetSketch(ImageNetVariant):
    info = CATALOG["ImageNetSketch"]
    dataset_dir = info.folder
    image_subdir = "images"
