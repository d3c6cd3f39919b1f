"""ImageNet-style class-name files: one ``<folder> <class name>`` per line (CoOp's classnames.txt)."""
from datasets.errors import SplitFileError


def read_classnames(path, dataset="ImageNet", fix="download classnames.txt again"):
    """``{folder: classname}`` in file order (the order ImageNetV2 uses for its labels)."""
    classnames = {}
    with open(path, "r", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            folder, _, name = line.partition(" ")
            if not name:
                raise SplitFileError(
                    dataset, path, f"line {number} is {line!r}, expected '<folder> <class name>'", fix
                )
            classnames[folder] = name.strip()
    return classnames


def lookup_classname(classnames, folder, dataset, path, fix):
    try:
        return classnames[folder]
    except KeyError:
        raise SplitFileError(dataset, path, f"it has no line for the image folder {folder!r}", fix) from None
