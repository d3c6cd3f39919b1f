"""Dataset errors that say what is wrong, where, and which DATASETS.md step fixes it."""
import os

from engine.user_errors import user_error

DOCS_FILE = "DATASETS.md"
_EXAMPLES_SHOWN = 5


def docs_reference(section):
    """'DATASETS.md, section "X"' -- the place in our docs a user should read."""
    return f'{DOCS_FILE}, section "{section}"'


@user_error  # train.py prints it without a traceback and exits with status 2
class DatasetError(RuntimeError):
    """Base class: something on disk does not match the layout a dataset expects."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A required folder or file (images, split file, class-name file) is missing."""

    def __init__(self, dataset, path, what, fix, section):
        self.dataset, self.path = dataset, os.path.abspath(path)
        super().__init__(
            f"{dataset}: {what} not found.\n"
            f"  Expected: {self.path}\n"
            f"  Fix: {fix}\n"
            f"  See {docs_reference(section)}; "
            f"`python tools/check_dataset.py` reports everything else that is missing."
        )


class SplitFileError(DatasetError):
    """A split / class-name / cache file exists but cannot be parsed."""

    def __init__(self, dataset, path, problem, fix):
        self.dataset, self.path = dataset, os.path.abspath(path)
        super().__init__(f"{dataset}: cannot read {self.path}: {problem}\n  Fix: {fix}")


class EmptyClassFolderError(DatasetError):
    """A class folder holds no image: every later class would take the next one's name."""

    def __init__(self, dataset, empty, total, fix, section):
        self.dataset, self.empty = dataset, [os.path.abspath(p) for p in empty]
        super().__init__(
            f"{dataset}: {len(self.empty)} of {total} class folders are empty (the first: {self.empty[0]}). "
            f"Labels are positions in the folder list, so an empty class would shift the name of every "
            f"later class by one.\n  Fix: the copy is incomplete. {fix}\n  See {docs_reference(section)}."
        )


class MissingImagesError(DatasetError, FileNotFoundError):
    """Split entries point at image files that do not exist."""

    def __init__(self, dataset, missing, total, fix):
        self.dataset, self.missing, self.total = dataset, list(missing), total
        shown = "\n".join(f"    {p}" for p in self.missing[:_EXAMPLES_SHOWN])
        more = len(self.missing) - _EXAMPLES_SHOWN
        tail = f"\n    ... and {more} more" if more > 0 else ""
        super().__init__(
            f"{dataset}: {len(self.missing)} of {total} listed images are missing, e.g.\n"
            f"{shown}{tail}\n  Fix: {fix}"
        )
