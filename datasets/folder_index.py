"""Sorted listings of class folders, cached as JSON so 10K folders are listed once.

Listing every image of ImageNet-21K takes minutes (longer on network storage). The
index stores, per class folder, its file names and the folder's mtime; a cached index is
reused while the set of folders and every folder's mtime are unchanged (adding or
removing a file changes its folder's mtime), so checking it costs one stat per folder.
Names are sorted, so every machine lists (and few-shot samples) the same order.
"""
import os

from engine.stale_temp_files import remove_stale_temp_files

from datasets.jsonio import read_json, try_write_json_atomic

INDEX_FORMAT = "rpp-folder-index/1"


def list_subfolders(directory, ignore=()):
    """Sorted names of the non-hidden sub-folders of ``directory``."""
    with os.scandir(directory) as entries:
        return sorted(
            e.name for e in entries
            if e.is_dir() and not e.name.startswith(".") and e.name not in ignore
        )


def list_files(directory):
    """Sorted names of the non-hidden files in ``directory``."""
    with os.scandir(directory) as entries:
        return sorted(e.name for e in entries if e.is_file() and not e.name.startswith("."))


def _mtimes(split_dir, folders):
    return [os.stat(os.path.join(split_dir, f)).st_mtime_ns for f in folders]


class FolderIndex:
    """File names per class folder; names are kept newline-joined to stay small in memory."""

    def __init__(self, split_dir, joined_by_folder):
        self.split_dir = split_dir
        self._joined = joined_by_folder

    @property
    def folders(self):
        return list(self._joined)

    def files(self, folder):
        joined = self._joined[folder]
        return joined.split("\n") if joined else []

    def count(self, folder):
        joined = self._joined[folder]
        return joined.count("\n") + 1 if joined else 0


def _load_cached(cache_path, folders, mtimes):
    if not cache_path or not os.path.isfile(cache_path):
        return None
    try:
        data = read_json(cache_path)
        if data.get("format") == INDEX_FORMAT and data["folders"] == folders and data["mtimes"] == mtimes:
            return dict(zip(folders, data["files"]))
    except (ValueError, KeyError, TypeError, AttributeError, OSError):
        pass  # a damaged cache is simply rebuilt
    return None


def load_folder_index(split_dir, folders, cache_path=None, progress=True):
    """A FolderIndex of ``split_dir/<folder>/*`` for ``folders``, from ``cache_path`` when valid."""
    mtimes = _mtimes(split_dir, folders)
    if cache_path:
        remove_stale_temp_files(os.path.dirname(os.path.abspath(cache_path)))
    joined = _load_cached(cache_path, folders, mtimes)
    if joined is None:
        print(f"Listing {len(folders):,} class folders in {split_dir} (cached afterwards)")
        iterator = folders
        if progress and len(folders) > 100:
            from tqdm import tqdm

            iterator = tqdm(folders, unit="folder")
        joined = {f: "\n".join(list_files(os.path.join(split_dir, f))) for f in iterator}
        if cache_path:
            data = {"format": INDEX_FORMAT, "folders": folders, "mtimes": mtimes,
                    "files": [joined[f] for f in folders]}
            try_write_json_atomic(cache_path, data)
    return FolderIndex(split_dir, joined)
