"""A split made of class folders (ImageNet and its variants, ImageNet-21K).

``ClassFolderSplit`` iterates like a list of Records, but also offers per-class groups
and a cheap fingerprint, so few-shot sampling draws 16 images from each of 10K folders
without ever building a Record for the other millions of images.
"""
import hashlib
import os
from collections.abc import Sequence

from datasets.records import Record


class FolderRecords(Sequence):
    """The images of one class folder as Records, built only when indexed."""

    def __init__(self, folder_path, names, label, classname):
        self.folder_path, self.names = folder_path, names
        self.label, self.classname = label, classname

    def __len__(self):
        return len(self.names)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return Record(os.path.join(self.folder_path, self.names[i]), self.label, self.classname)


class ClassFolderSplit:
    """Images of class folders, each folder one class, listed by FolderIndexes.

    ``classes`` is a list of ``(index, folder, label, classname)`` in the order the images
    are listed, which is also the few-shot draw order (Dassl: first appearance of a label).
    Classes may come from different parent folders (ImageNet-21K's full class set).
    """

    def __init__(self, classes):
        self.classes = list(classes)

    def label_groups(self):
        """One FolderRecords per class, generated lazily (for few-shot sampling)."""
        for index, folder, label, classname in self.classes:
            yield FolderRecords(os.path.join(index.split_dir, folder), index.files(folder), label, classname)

    def __iter__(self):
        for group in self.label_groups():
            yield from group

    def __len__(self):
        return sum(index.count(folder) for index, folder, _, _ in self.classes)

    def empty_folders(self):
        """Paths of the class folders that hold no file."""
        return [os.path.join(index.split_dir, folder) for index, folder, _, _ in self.classes
                if index.count(folder) == 0]

    def labels(self):
        """The label of every class, without listing any image."""
        return [label for _, _, label, _ in self.classes]

    def fingerprint(self):
        """Hash of (folder, label, image count) per class: changes when the listing does."""
        h = hashlib.sha1()
        for index, folder, label, _ in self.classes:
            where = f"{os.path.basename(index.split_dir)}/{folder}"
            h.update(f"{where}\t{label}\t{index.count(folder)}\n".encode())
        return h.hexdigest()
