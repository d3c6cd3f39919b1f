"""FGVCAircraft: 100 aircraft variants, read from the dataset's own list files.

There is no split JSON: classes are the lines of ``variants.txt`` (label = line order)
and each ``images_variant_<split>.txt`` line is ``<image id> <variant name>``.
"""
import os

from engine import DATASET_REGISTRY

from datasets.base import BenchmarkDataset
from datasets.catalog import CATALOG
from datasets.errors import SplitFileError
from datasets.records import Record

INFO = CATALOG["FGVCAircraft"]
LIST_FIX = "extract fgvc-aircraft-2013b.tar.gz again; its data/ folder holds the original lists"


def read_lines(path):
    with open(path, "r", encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def read_variant_list(path, image_dir, label_of):
    records = []
    for number, line in enumerate(read_lines(path), start=1):
        image_id, _, classname = line.partition(" ")
        if classname not in label_of:
            raise SplitFileError(
                INFO.name, path, f"line {number} names the unknown variant {classname!r}", LIST_FIX
            )
        records.append(Record(os.path.join(image_dir, image_id + ".jpg"), label_of[classname], classname))
    return records


@DATASET_REGISTRY.register()
class FGVCAircraft(BenchmarkDataset):
    info = INFO
    dataset_dir = INFO.folder

    @classmethod
    def read_records(cls, dataset_dir, cfg):
        classnames = read_lines(os.path.join(dataset_dir, "variants.txt"))
        label_of = {name: label for label, name in enumerate(classnames)}
        image_dir = os.path.join(dataset_dir, "images")
        return {
            split: read_variant_list(
                os.path.join(dataset_dir, f"images_variant_{split}.txt"), image_dir, label_of
            )
            for split in ("train", "val", "test")
        }
