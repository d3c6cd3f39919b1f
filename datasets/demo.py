"""Demo: 30 classes of the generated demo world ("red striped triangle", ...), see
datasets/demo_world.py, for tutorials, smoke tests and the shipped demo CLIP.

It is generated on first use into ``<DATASET.ROOT>/demo/`` in the layout of a real CoOp
dataset (``images/<class folder>/*.png`` + ``split_zhou_Demo.json``) and then read back
through the same split-file / few-shot / subsample code as every real dataset.
"""
import os
import shutil
import tempfile

from engine import DATASET_REGISTRY

from datasets.catalog import CATALOG
from datasets.demo_images import draw_composition_image
from datasets.demo_world import demo_compositions
from datasets.errors import DatasetNotFoundError
from datasets.records import Record
from datasets.split_file_dataset import SplitFileDataset
from datasets.splits import write_split

INFO = CATALOG["Demo"]
SPLIT_FILE = "split_zhou_Demo.json"
IMAGE_DIR = "images"
# Labels follow demo_compositions(), not the folder names' sort order: that order is
# what puts every colour, texture and shape into both the base and the new half.
DEMO_CLASSES = tuple(demo_compositions())
IMAGES_PER_SPLIT = (("train", 16), ("val", 4), ("test", 20))


def demo_classnames():
    return [composition.name for composition in DEMO_CLASSES]


def _write_images(dataset_dir):
    """Draw every image and return the split dict of Records."""
    splits = {name: [] for name, _ in IMAGES_PER_SPLIT}
    for label, composition in enumerate(DEMO_CLASSES):
        folder = composition.folder
        os.makedirs(os.path.join(dataset_dir, IMAGE_DIR, folder))
        index = 0
        for split_name, count in IMAGES_PER_SPLIT:
            for _ in range(count):
                impath = os.path.join(dataset_dir, IMAGE_DIR, folder, f"{folder}_{index:04d}.png")
                draw_composition_image(composition, label, index).save(impath, format="PNG")
                splits[split_name].append(Record(impath, label, composition.name))
                index += 1
    return splits


def generate_demo_dataset(root):
    """Create ``<root>/demo/`` unless it exists; returns its path. Safe to race.

    Everything is written into a private temp folder that is renamed into place at the
    end; a rename is atomic, so other processes see either nothing or the whole dataset.
    """
    root = os.path.abspath(os.path.expanduser(root))
    dataset_dir = os.path.join(root, INFO.folder)
    split_path = os.path.join(dataset_dir, SPLIT_FILE)
    if os.path.isfile(split_path):
        return dataset_dir
    if os.path.exists(dataset_dir):
        raise DatasetNotFoundError(
            INFO.name, split_path, "split file of an existing demo folder",
            f"delete {dataset_dir}; it is regenerated on the next run", INFO.section,
        )
    os.makedirs(root, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=".demo-tmp-", dir=root)
    try:
        splits = _write_images(tmp_dir)
        write_split(os.path.join(tmp_dir, SPLIT_FILE), splits, os.path.join(tmp_dir, IMAGE_DIR))
        os.rename(tmp_dir, dataset_dir)
    except OSError:
        if not os.path.isfile(split_path):  # only a concurrent process winning the rename is fine
            raise
    finally:
        if os.path.isdir(tmp_dir):
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return dataset_dir


@DATASET_REGISTRY.register()
class Demo(SplitFileDataset):
    info = INFO
    dataset_dir = INFO.folder
    image_subdir = IMAGE_DIR
    split_file = SPLIT_FILE

    @classmethod
    def check_layout(cls, dataset_dir):
        """Nothing to check: a missing demo is generated (the parent folder is DATASET.ROOT)."""
        generate_demo_dataset(os.path.dirname(dataset_dir))

