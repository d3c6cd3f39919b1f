"""CoOp split files: ``{"train"|"val"|"test": [[impath, label, classname], ...]}``.

``impath`` is relative to the dataset's image folder (StanfordCars: the dataset folder),
always written with "/" so a split file is portable between machines.
"""
import os

from datasets.errors import SplitFileError
from datasets.jsonio import read_json, write_json_atomic
from datasets.records import Record

SPLIT_NAMES = ("train", "val", "test")


def _parse_entries(entries, image_dir, split_name, dataset, path, fix):
    if not isinstance(entries, list):
        raise SplitFileError(dataset, path, f'"{split_name}" is not a list', fix)
    records = []
    for i, entry in enumerate(entries):
        ok = (
            isinstance(entry, (list, tuple)) and len(entry) == 3
            and isinstance(entry[0], str) and isinstance(entry[1], int)
            and not isinstance(entry[1], bool) and isinstance(entry[2], str)
        )
        if not ok:
            raise SplitFileError(
                dataset, path,
                f'entry {i} of "{split_name}" is {entry!r}, expected [impath, label, classname]', fix,
            )
        impath, label, classname = entry
        records.append(Record(os.path.join(image_dir, impath), label, classname))
    return records


def read_split(path, image_dir, dataset="dataset", fix="download the split file again"):
    """Parse a split file into ``{"train": [Record], "val": [...], "test": [...]}`` with absolute paths."""
    try:
        data = read_json(path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SplitFileError(dataset, path, f"not valid JSON ({exc})", fix) from exc
    if not isinstance(data, dict) or not all(name in data for name in SPLIT_NAMES):
        raise SplitFileError(dataset, path, 'expected an object with "train", "val" and "test"', fix)
    return {
        name: _parse_entries(data[name], image_dir, name, dataset, path, fix) for name in SPLIT_NAMES
    }


def _relative(impath, image_dir):
    return os.path.relpath(impath, image_dir).replace(os.sep, "/")


def write_split(path, splits, image_dir):
    """Write ``{"train": items, ...}`` (Records or Datums) in CoOp's split-file format."""
    data = {
        name: [[_relative(it.impath, image_dir), int(it.label), it.classname] for it in splits[name]]
        for name in SPLIT_NAMES
    }
    write_json_atomic(path, data)
