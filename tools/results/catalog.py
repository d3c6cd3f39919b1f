"""The datasets each evaluation protocol reports, in the papers' column order.

Folder names are the config stems in configs/datasets/ (what the sweep scripts write);
display names are the papers' column headers.
"""
import glob
import os

DATASET_CONFIGS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs", "datasets")
DISPLAY_NAMES = {
    "imagenet": "ImageNet",
    "caltech101": "Caltech101",
    "oxford_pets": "OxfordPets",
    "stanford_cars": "StanfordCars",
    "oxford_flowers": "Flowers102",
    "food101": "Food101",
    "fgvc_aircraft": "FGVCAircraft",
    "sun397": "SUN397",
    "dtd": "DTD",
    "eurosat": "EuroSAT",
    "ucf101": "UCF101",
    "imagenetv2": "ImageNetV2",
    "imagenet_sketch": "ImageNet-Sketch",
    "imagenet_a": "ImageNet-A",
    "imagenet_r": "ImageNet-R",
    "imagenet21k": "ImageNet-21K",
}

# The key the average over a table's datasets is stored under, next to dataset names.
AVERAGE = "average"

BASE2NEW_DATASETS = [
    "imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101",
    "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101",
]
CROSS_DATASET_TARGETS = [name for name in BASE2NEW_DATASETS if name != "imagenet"]
DG_TARGETS = ["imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r"]


def display_name(dataset):
    if dataset == AVERAGE:
        return "Average"
    return DISPLAY_NAMES.get(dataset, dataset)


def _squashed(name):
    return name.lower().replace("-", "").replace("_", "")


def canonical_dataset(name):
    """The config stem (= folder name) ``name`` stands for, as scripts/common.sh's
    rpp_dataset reads it: case, "-" and "_" do not matter (imagenet_21k -> imagenet21k).
    A name no config matches is returned as given (a folder of the user's own)."""
    stems = [os.path.basename(path)[:-len(".yaml")] for path in glob.glob(os.path.join(DATASET_CONFIGS, "*.yaml"))]
    if name in stems:
        return name
    matches = [stem for stem in stems if _squashed(stem) == _squashed(name)]
    return matches[0] if len(matches) == 1 else name
