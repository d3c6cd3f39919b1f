"""Shared pieces of the ImageNet family: class names, class-folder splits, index caches."""
import os

from datasets.class_folders import ClassFolderSplit
from datasets.errors import DatasetNotFoundError, EmptyClassFolderError
from datasets.classnames import lookup_classname, read_classnames
from datasets.folder_index import list_subfolders, load_folder_index
from datasets.pipeline import require

INDEX_CACHE_PREFIX = "rpp_index_"


def requirement(info, path):
    return next(r for r in info.requirements if r.path == path)


def load_classnames(info, dataset_dir):
    """``{wnid: name}`` from the dataset's classnames.txt (ImageNet's, copied to each variant)."""
    req = requirement(info, "classnames.txt")
    return read_classnames(require(info, dataset_dir, req), info.name, fix=req.fix)


def index_cache_path(dataset_dir, split_dir):
    """Where the listing of ``split_dir`` is cached: next to the data, named after the folder."""
    rel = os.path.relpath(split_dir, dataset_dir).replace(os.sep, "_")
    return os.path.join(dataset_dir, f"{INDEX_CACHE_PREFIX}{rel}.json")


def require_folders(info, split_dir, folders):
    """Every class folder must exist, or labels would silently shift."""
    absent = [f for f in folders if not os.path.isdir(os.path.join(split_dir, f))]
    if absent:
        raise DatasetNotFoundError(
            info.name, os.path.join(split_dir, absent[0]),
            f"{len(absent)} of {len(folders)} class folders (this is the first)",
            info.requirements[0].fix, info.section,
        )


def require_images_in_every_folder(info, split):
    """No empty class folder: Dassl (and the official code) would name label i after class i + 1."""
    empty = split.empty_folders()
    if empty:
        raise EmptyClassFolderError(info.name, empty, len(split.classes), info.requirements[0].fix, info.section)
    return split


def folder_split(info, dataset_dir, split_dir, folders, label_of, classnames, classnames_path, fix):
    """A ClassFolderSplit of ``folders`` (label ``label_of[folder]``, name from ``classnames``)."""
    require_folders(info, split_dir, folders)
    index = load_folder_index(split_dir, folders, index_cache_path(dataset_dir, split_dir))
    name_of = {f: lookup_classname(classnames, f, info.name, classnames_path, fix) for f in folders}
    classes = [(index, folder, label_of[folder], name_of[folder]) for folder in folders]
    return require_images_in_every_folder(info, ClassFolderSplit(classes))


def sorted_wnid_split(info, dataset_dir, split_dir, classnames, ignore=()):
    """Labels = position in the sorted folder list (ImageNet, Sketch, A, R)."""
    folders = list_subfolders(split_dir, ignore=ignore)
    label_of = {folder: label for label, folder in enumerate(folders)}
    req = requirement(info, "classnames.txt")
    classnames_path = os.path.join(dataset_dir, req.path)
    return folder_split(info, dataset_dir, split_dir, folders, label_of, classnames, classnames_path, req.fix)
