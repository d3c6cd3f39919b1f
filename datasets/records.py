"""Lightweight (impath, label, classname) records and their conversion to Datums.

Dataset code works on plain records until the very end: building a Datum stats the
file (Dassl asserts it exists), so only the items actually used become Datums, and a
missing file is reported once with a count instead of failing on the first one.
"""
import os
from typing import NamedTuple

from datasets.errors import MissingImagesError


class Record(NamedTuple):
    impath: str
    label: int
    classname: str


def relabel(item, label):
    """A copy of ``item`` (a Record or a Datum) carrying a new label."""
    if isinstance(item, Record):
        return item._replace(label=label)
    return type(item)(impath=item.impath, label=label, domain=item.domain, classname=item.classname)


def find_missing(records):
    return [r.impath for r in records if not os.path.isfile(r.impath)]


def to_datums(records, dataset, fix):
    """Datums for ``records``; raises MissingImagesError (with a count) if any file is absent."""
    from engine import Datum  # the engine is imported late so the pure helpers stay importable

    records = list(records)
    missing = find_missing(records)
    if missing:
        raise MissingImagesError(dataset, missing, len(records), fix)
    return [Datum(impath=r.impath, label=r.label, classname=r.classname) for r in records]
