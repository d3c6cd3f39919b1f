"""Config keys the dataset classes add (registered with engine.config_extension)."""
from engine.config_extension import config_extension

IN21K_CLASS_SETS = ("pomp", "all")


@config_extension
def _dataset_keys(cfg):
    # ImageNet-21K: "pomp" = the ~10.4K classes of imagenet21k_train/ (POMP's setting);
    # "all" adds imagenet21k_small_classes/ (about 19K classes, train only).
    cfg.DATASET.IN21K_CLASS_SET = "pomp"
