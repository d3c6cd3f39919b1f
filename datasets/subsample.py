"""CoCoOp's base-to-new protocol: keep the first (base) or second (new) half of the classes."""
import math

from datasets.records import relabel

SUBSAMPLE_CHOICES = ("all", "base", "new")


def check_subsample(subsample):
    if subsample not in SUBSAMPLE_CHOICES:
        raise ValueError(
            f"DATASET.SUBSAMPLE_CLASSES must be one of {', '.join(SUBSAMPLE_CHOICES)}, got {subsample!r}"
        )


def select_labels(labels, subsample):
    """The sorted labels kept by ``subsample``: base = first ceil(n/2), new = the rest."""
    check_subsample(subsample)
    labels = sorted(set(labels))
    half = math.ceil(len(labels) / 2)
    if subsample == "base":
        return labels[:half]
    if subsample == "new":
        return labels[half:]
    return labels


def subsample_classes(*splits, subsample="all"):
    """Filter every split to the base or new classes and relabel them 0..n-1.

    The classes are decided by the FIRST split (train), as CoCoOp does, and the same
    selection and relabelling is applied to all splits. "all" returns them unchanged.
    """
    check_subsample(subsample)
    if subsample == "all":
        return list(splits)
    kept = select_labels((item.label for item in splits[0]), subsample)
    new_label = {old: new for new, old in enumerate(kept)}
    return [
        [relabel(item, new_label[item.label]) for item in split if item.label in new_label]
        for split in splits
    ]
