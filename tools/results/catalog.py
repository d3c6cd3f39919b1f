"""The datasets each evaluation protocol reports, in the papers' column order.

Folder names are the config stems in configs/datasets/ (what the sweep scripts write);
display names are the papers' column headers.
"""
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
