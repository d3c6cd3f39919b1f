"""CoOp split files: ``{"train"|"val"|"test": [[impath, label, classname], ...]}``.

``impath`` is relative to the dataset's image folder (StanfordCars: the dataset folder),
always written with "/" so a split file is portable between machines. Labels must be
0 .. n-1 for the n classes of "train", each with one class name in every split: the
engine counts the classes of "train" (largest label + 1) and names them by label, so a
gap, a negative label, a val/test label beyond "train" or a label with two names would
train and evaluate the wrong classes.
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
    splits = {
        name: _parse_entries(data[name], image_dir, name, dataset, path, fix) for name in SPLIT_NAMES
    }
    _check_labels(splits, dataset, path, fix)
    return splits


def _check_labels(splits, dataset, path, fix):
    """Labels 0 .. n-1 for the n classes of "train" (as the engine counts them), one name each."""
    name_of, first_entry = {}, {}
    for split_name, records in splits.items():
        for i, record in enumerate(records):
            where = f'entry {i} of "{split_name}"'
            if record.label < 0:
                raise SplitFileError(dataset, path, f"{where} has the negative label {record.label}", fix)
            known = name_of.setdefault(record.label, record.classname)
            if known != record.classname:
                raise SplitFileError(
                    dataset, path,
                    f'{where} names label {record.label} "{record.classname}", but '
                    f'{first_entry[record.label]} names it "{known}"', fix,
                )
            first_entry.setdefault(record.label, where)
    n_classes = len({record.label for record in splits["train"]})
    beyond = [label for label in name_of if label >= n_classes] if n_classes else []
    if beyond:
        label = min(beyond)
        raise SplitFileError(
            dataset, path,
            f"{first_entry[label]} has the label {label}, out of range: \"train\" has {n_classes} "
            f"classes, so labels must be 0 .. {n_classes - 1}", fix,
        )


def _relative(impath, image_dir):
    return os.path.relpath(impath, image_dir).replace(os.sep, "/")


def write_split(path, splits, image_dir):
    """Write ``{"train": items, ...}`` (Records or Datums) in CoOp's split-file format."""
    data = {
        name: [[_relative(it.impath, image_dir), int(it.label), it.classname] for it in splits[name]]
        for name in SPLIT_NAMES
    }
    write_json_atomic(path, data)
